"""`provision dev up|down|status`: one cluster's processes on this host, driven by the component table.

Everything a cluster needs to be found again lives in `<home>/<name>/cluster.json`: its loopback
block, its master count and, per process, the PID, exact command line, kernel start time and a
fingerprint of the launch (command line + config files). `up` compares the table's launches with
that record: a live process with the same fingerprint is left alone, a dead one is started again and
a changed one is restarted. This module is synchronous; it is called from the CLI and test fixtures.
"""

from __future__ import annotations

import hashlib
import shutil
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import fasteners

from provisioner.controlplane.agent.cgroups import detect_cgroups
from provisioner.controlplane.agent.runtime import reap
from provisioner.dev.certs import issue_dev_certs
from provisioner.dev.components import (
    AGENT,
    COMPONENTS,
    ETCD,
    ClusterPaths,
    ComponentSpec,
    Context,
    Instance,
    Launch,
    identities,
)
from provisioner.dev.layout import MASTER_COUNTS, MAX_NODES, Layout, choose_block
from provisioner.dev.probes import EtcdMemberStatus, etcd_member_status
from provisioner.dev.processes import ProcessRecord, is_alive, port_in_use, spawn, stop
from provisioner.errors import ProvisionerError
from provisioner.identities import ADMIN_USER
from provisioner.kubeconfig import issue_user_kubeconfig, write_kubeconfig
from provisioner.phases import PhaseTime, timed_phase
from provisioner.pki import CertificateAuthority
from provisioner.state import (
    cluster_dir,
    existing_clusters,
    provisioner_home,
    read_json,
    write_json,
)

__all__ = [
    "DEFAULT_MASTERS",
    "Action",
    "ClusterStatus",
    "DownReport",
    "EtcdStatus",
    "ProcessStatus",
    "UpReport",
    "admin_kubeconfig",
    "dev_down",
    "dev_status",
    "dev_up",
    "load_layout",
    "user_kubeconfig",
]

DEFAULT_MASTERS = 3
STATE_FILE = "cluster.json"
_HEALTH_TIMEOUT = 120.0

Reporter = Callable[[str], None]


@dataclass(frozen=True)
class Action:
    process: str
    what: str  # "started", "restarted" (it had died), "reconfigured" or "unchanged"


@dataclass(frozen=True)
class UpReport:
    layout: Layout
    server: str
    kubeconfig: Path
    actions: tuple[Action, ...]
    phases: tuple[PhaseTime, ...]

    @property
    def changed(self) -> bool:
        return any(a.what != "unchanged" for a in self.actions)


@dataclass(frozen=True)
class DownReport:
    name: str
    stopped: tuple[str, ...]
    purged: bool


@dataclass(frozen=True)
class ProcessStatus:
    name: str
    kind: str
    pid: int | None
    alive: bool
    endpoint: str
    log_file: Path


@dataclass(frozen=True)
class EtcdStatus:
    name: str
    endpoint: str
    status: EtcdMemberStatus | str  # a string says why the member could not be asked


@dataclass(frozen=True)
class ClusterStatus:
    layout: Layout
    root: Path
    processes: tuple[ProcessStatus, ...]
    etcd: tuple[EtcdStatus, ...]

    @property
    def leader(self) -> str | None:
        leaders = {s.status.leader_id for s in self.etcd if isinstance(s.status, EtcdMemberStatus)}
        return next(
            (s.name for s in self.etcd if isinstance(s.status, EtcdMemberStatus) and s.status.member_id in leaders),
            None,
        )


class _State:
    """The JSON state file of one cluster, saved after every change so a crash loses no PID."""

    def __init__(self, paths: ClusterPaths, data: dict[str, Any]) -> None:
        self.paths = paths
        self.data = data

    @property
    def layout(self) -> Layout:
        return Layout(name=self.data["name"], block=int(self.data["block"]), masters=int(self.data["masters"]),
                      nodes=int(self.data.get("nodes", 0)))

    def processes(self) -> dict[str, dict[str, Any]]:
        return self.data.setdefault("processes", {})

    def record(self, name: str) -> ProcessRecord | None:
        entry = self.processes().get(name)
        if not entry or entry.get("pid") is None:
            return None
        return ProcessRecord(pid=int(entry["pid"]), argv=tuple(entry["argv"]), start_time=int(entry["start_time"]))

    def save(self) -> None:
        write_json(self.paths.state_file, self.data)


def _paths(name: str, home: Path | None) -> ClusterPaths:
    return ClusterPaths(cluster_dir(name, home=home))


def _load(name: str, home: Path | None) -> _State:
    paths = _paths(name, home)
    if not paths.state_file.is_file():
        known = existing_clusters(home=home, state_file=STATE_FILE)
        raise ProvisionerError(
            f"no dev cluster named {name!r} under {home or provisioner_home()}",
            hint=f"existing clusters: {', '.join(known)}" if known else "create one with `provision dev up`",
        )
    return _State(paths, read_json(paths.state_file))


def load_layout(name: str, *, home: Path | None = None) -> Layout:
    """The addresses of an existing cluster."""
    return _load(name, home).layout


def admin_kubeconfig(*, name: str, home: Path | None = None) -> Path:
    state = _load(name, home)
    if not state.paths.admin_kubeconfig.is_file():
        raise ProvisionerError(
            f"dev cluster {name!r} has no admin kubeconfig yet", hint=f"run `provision dev up --name {name}`"
        )
    return state.paths.admin_kubeconfig


def user_kubeconfig(*, name: str, user: str, groups: tuple[str, ...], home: Path | None = None) -> Path:
    """A kubeconfig for `user` in `groups`, with a client certificate from the cluster CA."""
    state = _load(name, home)
    return issue_user_kubeconfig(
        ca=CertificateAuthority.load_or_create(state.paths.pki),
        directory=state.paths.root,
        cluster_name=name,
        server=state.layout.server_url,
        user=user,
        groups=groups,
    )


def _all_ports(layout: Layout) -> Iterator[tuple[str, int]]:
    for spec in COMPONENTS:
        for inst in spec.instances(layout):
            for port in inst.ports:
                yield inst.address, port


def _new_state(name: str, masters: int, nodes: int, home: Path | None) -> _State:
    """Pick a loopback block no other cluster here records and where every port is free."""
    taken = {
        int(read_json(cluster_dir(other, home=home) / STATE_FILE).get("block", 0))
        for other in existing_clusters(home=home, state_file=STATE_FILE)
    }

    def free(block: int) -> bool:
        layout = Layout(name=name, block=block, masters=masters, nodes=nodes)
        return not any(port_in_use(a, p) for a, p in _all_ports(layout))

    block = choose_block(name, taken=taken, free=free)
    if block is None:
        raise ProvisionerError(
            "no free loopback block 127.N.0.0/16 left for a new dev cluster",
            hint="stop other dev clusters with `provision dev down --name NAME`",
        )
    state = _State(_paths(name, home),
                   {"name": name, "block": block, "masters": masters, "nodes": nodes, "processes": {}})
    state.save()
    return state


def _check_masters(masters: int | None) -> None:
    if masters is not None and masters not in MASTER_COUNTS:
        raise ProvisionerError(
            f"--masters must be one of {', '.join(map(str, MASTER_COUNTS))}, not {masters}",
            hint="etcd needs an odd number of members for a quorum; 1 is a toy",
        )


def _resolve_masters(state: _State | None, masters: int | None) -> int:
    if state is None:
        return masters or DEFAULT_MASTERS
    recorded = state.layout.masters
    if masters is not None and masters != recorded:
        raise ProvisionerError(
            f"dev cluster {state.layout.name!r} has {recorded} masters; changing it to {masters} is not supported",
            hint=f"run `provision dev down --name {state.layout.name} --purge` first, or omit --masters",
        )
    return recorded


def _resolve_nodes(state: _State | None, nodes: int | None) -> int:
    """A new cluster gets `nodes` (default 0); an existing one may grow, never shrink."""
    if nodes is not None and not 0 <= nodes <= MAX_NODES:
        raise ProvisionerError(f"--nodes must be between 0 and {MAX_NODES}, not {nodes}",
                               hint="each node is one agent process on its own loopback address")
    if state is None:
        return nodes or 0
    recorded = state.layout.nodes
    if nodes is not None and nodes < recorded:
        raise ProvisionerError(
            f"dev cluster {state.layout.name!r} has {recorded} nodes; shrinking it to {nodes} is not supported",
            hint=f"run `provision dev down --name {state.layout.name} --purge` first, or omit --nodes",
        )
    if nodes is not None and nodes != recorded:
        state.data["nodes"] = nodes
        state.save()
    return recorded if nodes is None else nodes


def _fingerprint(launch: Launch) -> str:
    digest = hashlib.sha256("\0".join(launch.argv).encode())
    for path in sorted(launch.files):
        digest.update(f"\0{path}\0{launch.files[path]}".encode())
    return digest.hexdigest()


def _write_files(files: dict[Path, str]) -> None:
    for path, text in files.items():
        if not path.exists() or path.read_text() != text:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text)


def _log_tail(path: Path, lines: int = 15) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


def _check_ports(state: _State) -> None:
    """Before starting anything: every port of a process that is not running must be free."""
    for spec in COMPONENTS:
        for inst in spec.instances(state.layout):
            record = state.record(inst.name)
            if record is not None and is_alive(record):
                continue
            for port in inst.ports:
                if port_in_use(inst.address, port):
                    raise ProvisionerError(
                        f"{inst.name}: port {inst.address}:{port} is already in use by another process",
                        hint=f"find it with `ss -ltnp 'src {inst.address}:{port}'` and stop it",
                    )


def _start(state: _State, ctx: Context, spec: ComponentSpec, inst: Instance, launch: Launch) -> None:
    log_file = ctx.paths.logs / f"{inst.name}.log"
    record = spawn(list(launch.argv), log_file=log_file)
    state.processes()[inst.name] = {
        "kind": spec.kind,
        "pid": record.pid,
        "argv": list(record.argv),
        "start_time": record.start_time,
        "fingerprint": _fingerprint(launch),
        "endpoint": inst.endpoint,
        "log": str(log_file),
    }
    state.save()


def _reconcile(state: _State, ctx: Context, spec: ComponentSpec) -> list[Action]:
    actions = []
    for inst in spec.instances(ctx.layout):
        launch = spec.launch(ctx, inst)
        _write_files(launch.files)
        record = state.record(inst.name)
        alive = record is not None and is_alive(record)
        if alive and state.processes()[inst.name].get("fingerprint") == _fingerprint(launch):
            actions.append(Action(inst.name, "unchanged"))
            continue
        if alive and record is not None:
            stop(record)
            what = "reconfigured"
        else:
            what = "restarted" if record is not None else "started"
        _start(state, ctx, spec, inst, launch)
        actions.append(Action(inst.name, what))
    return actions


def _wait_healthy(state: _State, ctx: Context, spec: ComponentSpec, report: Reporter) -> None:
    deadline = time.monotonic() + _HEALTH_TIMEOUT
    waiting = {inst.name: inst for inst in spec.instances(ctx.layout)}
    reasons: dict[str, str] = {}
    while waiting:
        for name, inst in list(waiting.items()):
            record = state.record(name)
            if record is None or not is_alive(record):
                log_file = ctx.paths.logs / f"{name}.log"
                raise ProvisionerError(
                    f"{name} exited while starting; last lines of {log_file}:\n{_log_tail(log_file)}",
                    hint=f"fix the cause, then run `provision dev up --name {ctx.layout.name}` again",
                )
            reason = spec.unhealthy(ctx, inst)
            if reason is None:
                del waiting[name]
            else:
                reasons[name] = reason
        if not waiting:
            return
        report(f"waiting for {spec.title}: {', '.join(sorted(waiting))} ({reasons[min(waiting)]})")
        if time.monotonic() > deadline:
            detail = "\n".join(f"  {n}: {reasons[n]}" for n in sorted(waiting))
            raise ProvisionerError(
                f"{spec.title} not healthy after {_HEALTH_TIMEOUT:.0f}s:\n{detail}",
                hint=f"see the logs in {ctx.paths.logs}",
            )
        time.sleep(0.25)


@contextmanager
def _locked(paths: ClusterPaths) -> Iterator[None]:
    """One `up` or `down` of a cluster at a time (a purge may delete the lock file while holding it)."""
    paths.root.mkdir(parents=True, exist_ok=True)
    with fasteners.InterProcessLock(str(paths.root / ".lock")):
        yield


def dev_up(
    *,
    name: str,
    masters: int | None = None,
    nodes: int | None = None,
    home: Path | None = None,
    report: Reporter = lambda _: None,
) -> UpReport:
    """Bring the cluster to "every process running and healthy", changing only what is not."""
    paths = _paths(name, home)
    _check_masters(masters)
    with _locked(paths):
        existing = _load(name, home) if paths.state_file.is_file() else None
        masters = _resolve_masters(existing, masters)
        nodes = _resolve_nodes(existing, nodes)
        phases: list[PhaseTime] = []
        actions: list[Action] = []
        with timed_phase(phases, "addresses", report):
            state = existing or _new_state(name, masters, nodes, home)
            _check_ports(state)
        with timed_phase(phases, "certificates", report):
            ctx = Context(layout=state.layout, paths=paths, certs=issue_dev_certs(state.layout, paths.pki))
        with timed_phase(phases, "kubeconfig", report):  # before the components: the control loops and agents read it
            write_kubeconfig(
                paths.admin_kubeconfig,
                cluster_name=name,
                server=ctx.layout.server_url,
                ca_file=ctx.certs.ca_file,
                cert_file=ctx.certs.clients.admin.cert_file,
                key_file=ctx.certs.clients.admin.key_file,
                user=ADMIN_USER,
            )
            for identity, (user, cert) in identities(ctx).items():
                write_kubeconfig(paths.kubeconfig(identity), cluster_name=name, server=ctx.layout.server_url,
                                 ca_file=ctx.certs.ca_file, cert_file=cert.cert_file, key_file=cert.key_file,
                                 user=user)
        for spec in COMPONENTS:
            with timed_phase(phases, spec.title, report):
                actions += _reconcile(state, ctx, spec)
                _wait_healthy(state, ctx, spec, report)
        return UpReport(
            layout=ctx.layout,
            server=ctx.layout.server_url,
            kubeconfig=paths.admin_kubeconfig,
            actions=tuple(actions),
            phases=tuple(phases),
        )


def dev_down(*, name: str, purge: bool = False, home: Path | None = None) -> DownReport:
    """Stop exactly the recorded processes, last-started first; keep the data unless `purge`."""
    with _locked(_load(name, home).paths):
        state = _load(name, home)
        order = [inst.name for spec in reversed(COMPONENTS) for inst in spec.instances(state.layout)]
        names = order + sorted(set(state.processes()) - set(order))  # records of components no longer in the table
        stopped = []
        for process in names:
            record = state.record(process)
            if record is not None and stop(record):
                stopped.append(process)
            if process in state.processes():
                state.processes()[process]["pid"] = None
                state.save()
        cgroups = detect_cgroups() if state.layout.nodes else None
        for inst in AGENT.instances(state.layout):  # containers outlive their agent by design: stop them too
            root = state.paths.data / inst.name
            if cgroups is not None and root.is_dir():
                reap(root, cgroups=cgroups)
        if purge:
            shutil.rmtree(state.paths.root)
        return DownReport(name=name, stopped=tuple(stopped), purged=purge)


def dev_status(*, name: str, home: Path | None = None) -> ClusterStatus:
    state = _load(name, home)
    layout = state.layout
    ca_file = state.paths.pki / "ca.crt"
    processes = []
    for process, entry in sorted(state.processes().items()):
        record = state.record(process)
        processes.append(
            ProcessStatus(
                name=process,
                kind=entry["kind"],
                pid=record.pid if record else None,
                alive=record is not None and is_alive(record),
                endpoint=entry["endpoint"],
                log_file=Path(entry["log"]),
            )
        )
    etcd_client = issue_dev_certs(layout, state.paths.pki).clients.etcd_client
    members = tuple(
        EtcdStatus(
            name=inst.name,
            endpoint=inst.endpoint,
            status=etcd_member_status(f"https://{inst.endpoint}", ca_file=ca_file, client=etcd_client),
        )
        for inst in ETCD.instances(layout)
    )
    return ClusterStatus(layout=layout, root=state.paths.root, processes=tuple(processes), etcd=members)
