"""`provision`: parse the command line, call one importable function, render its result.

The only module that prints. A `ProvisionerError` becomes its message and hint on stderr and exit
code 1; a traceback is shown only with `--debug`.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from provisioner import dev
from provisioner.errors import ProvisionerError
from provisioner.infra.cli_image import image_app

__all__ = ["app", "main"]

app = typer.Typer(
    help="Provision highly available Kubernetes-style clusters.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
dev_app = typer.Typer(help="A whole control plane as processes on this host.", no_args_is_help=True)
app.add_typer(dev_app, name="dev")
app.add_typer(image_app, name="image")

_out = Console(soft_wrap=True)
_err = Console(stderr=True, soft_wrap=True)

NameOption = Annotated[str, typer.Option("--name", help="Cluster name (its state lives in $PROVISIONER_HOME/NAME).")]
DEFAULT_NAME = "dev"


@app.callback()
def _root(debug: Annotated[bool, typer.Option("--debug", help="Show tracebacks of errors.")] = False) -> None:
    """`main` reads --debug itself: errors surface after typer has finished with its options."""


@dev_app.command("up")
def dev_up(
    name: NameOption = DEFAULT_NAME,
    masters: Annotated[int | None, typer.Option("--masters", help="1, 3 or 5 (default 3 for a new cluster).")] = None,
) -> None:
    """Start (or repair) a dev cluster: etcd, API servers, HAProxy and an admin kubeconfig."""
    with _err.status("starting") as spinner:
        report = dev.dev_up(name=name, masters=masters, report=lambda msg: spinner.update(msg))
    for action in report.actions:
        if action.what != "unchanged":
            _out.print(f"{action.process}: {action.what}")
    if not report.changed:
        _out.print(f"nothing changed: all {len(report.actions)} processes of {name!r} are running and healthy")
    timings = Table("phase", "seconds", title="time per phase", title_justify="left")
    for phase in report.phases:
        timings.add_row(phase.title, f"{phase.seconds:.1f}")
    timings.add_row("total", f"{sum(p.seconds for p in report.phases):.1f}", style="bold")
    _out.print(timings)
    _out.print(f"server: {report.server}\nkubeconfig: {report.kubeconfig}", highlight=False)
    _out.print(f"try: kubectl --kubeconfig {report.kubeconfig} get namespaces", highlight=False)


@dev_app.command("down")
def dev_down(
    name: NameOption = DEFAULT_NAME,
    purge: Annotated[bool, typer.Option("--purge", help="Also delete data, certificates and logs.")] = False,
) -> None:
    """Stop exactly the processes `dev up` started; keep the data unless --purge."""
    report = dev.dev_down(name=name, purge=purge)
    _out.print(f"stopped: {', '.join(report.stopped) or 'nothing was running'}")
    _out.print(f"purged {name!r}" if report.purged else f"data kept; `provision dev up --name {name}` resumes it")


@dev_app.command("status")
def dev_status(name: NameOption = DEFAULT_NAME) -> None:
    """Show each process of a dev cluster and the health of every etcd member."""
    status = dev.dev_status(name=name)
    processes = Table(
        "process", "state", "pid", "address", "log", title=f"{name} ({status.root})", title_justify="left"
    )
    for p in status.processes:
        state = "[green]alive[/]" if p.alive else "[red]dead[/]"
        processes.add_row(p.name, state, str(p.pid or "-"), p.endpoint, str(p.log_file))
    _out.print(processes)
    members = Table("etcd member", "address", "health", "revision", title="etcd", title_justify="left")
    for m in status.etcd:
        if isinstance(m.status, str):
            members.add_row(m.name, m.endpoint, f"[red]unhealthy[/]: {m.status}", "-")
        else:
            role = "leader" if m.status.is_leader else "follower"
            members.add_row(m.name, m.endpoint, f"[green]healthy[/] ({role})", str(m.status.revision))
    _out.print(members)
    _out.print(f"leader: {status.leader or 'none'}")


@app.command("kubeconfig")
def kubeconfig(
    name: NameOption = DEFAULT_NAME,
    user: Annotated[str | None, typer.Option("--user", help="Issue a client certificate for this user.")] = None,
    group: Annotated[list[str] | None, typer.Option("--group", help="A group of --user (repeatable).")] = None,
) -> None:
    """Print the path of the admin kubeconfig, or of a newly issued one for --user."""
    if user is None and group:
        raise ProvisionerError("--group needs --user", hint="e.g. provision kubeconfig --user alice --group dev")
    path: Path = (
        dev.admin_kubeconfig(name=name)
        if user is None
        else dev.user_kubeconfig(name=name, user=user, groups=tuple(group or ()))
    )
    print(path)


def main(argv: list[str] | None = None) -> None:
    """Entry point of `provision`: a ProvisionerError becomes message + hint and exit code 1."""
    args = sys.argv[1:] if argv is None else argv
    try:
        app(args=args, prog_name="provision")
    except ProvisionerError as e:
        if "--debug" in args:
            _err.print_exception()
        _err.print(f"[bold red]error:[/] {e.message}", highlight=False)
        if e.hint:
            _err.print(f"[yellow]hint:[/] {e.hint}", highlight=False)
        sys.exit(1)
