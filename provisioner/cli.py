"""`provision`: parse the command line, call one importable function, render its result.

The only module that prints. A `ProvisionerError` becomes its message and hint on stderr and exit
code 1; a traceback is shown only with `--debug`.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from provisioner import dev
from provisioner.cluster import ops
from provisioner.cluster.state import cluster_files, load_state, saved_spec
from provisioner.cluster.up import up
from provisioner.errors import ProvisionerError
from provisioner.infra.cli_image import image_app
from provisioner.phases import PhaseTime
from provisioner.spec import ClusterSpec, load_spec

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
    nodes: Annotated[int | None, typer.Option("--nodes", help="Node agents (default 0; may grow later).")] = None,
) -> None:
    """Start (or repair) a dev cluster: etcd, API servers, HAProxy, control loops, node agents, admin kubeconfig."""
    with _err.status("starting") as spinner:
        report = dev.dev_up(name=name, masters=masters, nodes=nodes, report=lambda msg: spinner.update(msg))
    for action in report.actions:
        if action.what != "unchanged":
            _out.print(f"{action.process}: {action.what}")
    if not report.changed:
        _out.print(f"nothing changed: all {len(report.actions)} processes of {name!r} are running and healthy")
    _print_phases(report.phases)
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
    if user is None and cluster_files(name).state_file.is_file():
        print(ops.kubeconfig_path(name))
        return
    path: Path = (
        dev.admin_kubeconfig(name=name)
        if user is None
        else dev.user_kubeconfig(name=name, user=user, groups=tuple(group or ()))
    )
    print(path)


ClusterOption = Annotated[str, typer.Option("--name", help="Cluster name.")]
SpecOption = Annotated[Path | None, typer.Option("--spec", help="Cluster spec YAML; flags override it.")]
SpecNameOption = Annotated[str | None, typer.Option("--name", help="Cluster name (default: the spec's, else lab).")]
CloudOption = Annotated[str | None, typer.Option("--cloud", help="local (default) or baremetal.")]
MastersOption = Annotated[int | None, typer.Option("--masters", help="1, 3 or 5.")]
NodesOption = Annotated[int | None, typer.Option("--nodes", help="Worker nodes.")]
InventoryOption = Annotated[Path | None, typer.Option("--inventory", help="Bare-metal hosts (inventories/*.yml).")]
YesOption = Annotated[bool, typer.Option("--yes", help="Do not ask for confirmation.")]
CLUSTER_NAME = "lab"


def _spec(spec: Path | None, name: str | None, cloud: str | None, masters: int | None, nodes: int | None,
          inventory: Path | None) -> ClusterSpec:
    return load_spec(spec, overrides={"name": name, "cloud": cloud, "masters": masters, "nodes": nodes,
                                      "inventory": inventory})


def _up(spec: ClusterSpec) -> None:
    with _err.status("starting") as spinner:
        report = up(spec, progress=lambda msg: spinner.update(msg))
    for change in report.changes:
        _out.print(f"changed: {change}", highlight=False)
    for finding in report.warnings:
        _out.print(f"[yellow]warning[/]: {finding.machine}: {finding.message}", highlight=False)
    if not report.changed:
        _out.print(f"no changes: cluster {report.name!r} already matches its spec")
    _print_phases(report.phases)
    _out.print(f"endpoint: {report.endpoint}\nkubeconfig: {report.kubeconfig}", highlight=False)


def _print_phases(phases: tuple[PhaseTime, ...]) -> None:
    timings = Table("phase", "seconds", title="time per phase", title_justify="left")
    for phase in phases:
        timings.add_row(phase.name, "resumed past" if phase.skipped else f"{phase.seconds:.1f}")
    timings.add_row("total", f"{sum(p.seconds for p in phases):.1f}", style="bold")
    _out.print(timings)


@app.command("up")
def up_cmd(spec: SpecOption = None, name: SpecNameOption = None, cloud: CloudOption = None,
           masters: MastersOption = None, nodes: NodesOption = None, inventory: InventoryOption = None) -> None:
    """Create or repair a cluster on real machines; running it again changes nothing."""
    _up(_spec(spec, name, cloud, masters, nodes, inventory))


@app.command("plan")
def plan_cmd(spec: SpecOption = None, name: SpecNameOption = None, cloud: CloudOption = None,
             masters: MastersOption = None, nodes: NodesOption = None, inventory: InventoryOption = None) -> None:
    """Show what `up` would create or change, changing nothing."""
    result = ops.plan(_spec(spec, name, cloud, masters, nodes, inventory))
    for title, names in (("create", result.create), ("start", result.start), ("configure", result.configure),
                         ("unchanged", result.unchanged)):
        _out.print(f"{title}: {', '.join(names) or '-'}", highlight=False)
    _out.print(f"load balancer: {result.balancer}")


@app.command("status")
def status_cmd(name: ClusterOption = CLUSTER_NAME) -> None:
    """Machines, etcd members and leader, component health, nodes as the API sees them."""
    result = ops.status(name)
    machines = Table("machine", "state", "address", "units", title=f"{name} ({result.endpoint or 'no endpoint'})",
                     title_justify="left")
    for m in result.machines:
        units = ", ".join(f"{u.removeprefix('provisioner-').removesuffix('.service')}={s}" for u, s in m.units.items())
        machines.add_row(m.name, m.state, m.address, units or "-")
    _out.print(machines)
    for endpoint, role in result.etcd:
        _out.print(f"etcd {endpoint}: {role}", highlight=False)
    if isinstance(result.nodes, str):
        _out.print(f"nodes: API not reachable: {result.nodes}", highlight=False)
    else:
        _out.print("nodes: " + (", ".join(f"{n} {'Ready' if ok else 'NotReady'}" for n, ok in result.nodes) or "-"))


@app.command("down")
def down_cmd(name: ClusterOption = CLUSTER_NAME, yes: YesOption = False) -> None:
    """Delete every resource of the cluster (uninstalling from bare metal) and check that none is left."""
    if not yes and not typer.confirm(f"delete cluster {name!r} and all its machines?"):
        raise typer.Exit(1)
    with _err.status("deleting"):
        report = ops.down(name)
    _out.print(f"destroyed: {', '.join(report.destroyed) or '-'}; uninstalled: {', '.join(report.uninstalled) or '-'}")
    _out.print("nothing left behind")


@app.command("rebuild")
def rebuild_cmd(name: ClusterOption = CLUSTER_NAME, yes: YesOption = False) -> None:
    """`down`, then `up` from the same spec."""
    spec = saved_spec(load_state(name)[1])
    down_cmd(name=name, yes=yes)
    _up(spec)


@app.command("ssh")
def ssh_cmd(machine: str, name: ClusterOption = CLUSTER_NAME,
            command: Annotated[list[str] | None, typer.Argument()] = None) -> None:
    """Log into MACHINE (or run COMMAND there)."""
    argv = ops.ssh_argv(name, machine, command=tuple(command or ()))
    os.execvp(argv[0], argv)


@app.command("logs")
def logs_cmd(machine: str, component: Annotated[str | None, typer.Argument()] = None,
             name: ClusterOption = CLUSTER_NAME, lines: Annotated[int, typer.Option("--lines", "-n")] = 200) -> None:
    """The journal of COMPONENT (etcd, apiserver, controllers, scheduler, haproxy, agent) on MACHINE."""
    print(ops.logs(name, machine, component, lines=lines), end="")


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
