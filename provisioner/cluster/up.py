"""`provision up`: machines, preflight, PKI, etcd, control plane, load balancer, nodes, verification, kubeconfig.

Every phase is idempotent, so `up` on a finished cluster walks all of them and changes nothing. The state
file records each finished phase; when an `up` fails, the next one skips the configuration phases that
already finished (machines, preflight, PKI and the load balancer are always re-checked: they are cheap,
and a machine stopped in between must be started again).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kubernetes import client as k8s

from provisioner.cluster.machines import Cloud, Machine, ensure_balancer, ensure_machines, open_cloud, stale_images
from provisioner.cluster.preflight import Finding, preflight
from provisioner.cluster.state import ClusterFiles, cluster_files, locked, save, saved_spec, spec_to_dict
from provisioner.configure.bundle import render_bundle, write_archive
from provisioner.configure.certs import ClusterCerts, issue_cluster_certs
from provisioner.configure.inventory import InventoryHost, render_inventory, render_known_hosts
from provisioner.configure.runner import PlaybookResult, close_connections, run_playbook
from provisioner.configure.topology import Host, Topology, VirtualIp
from provisioner.errors import ProvisionerError
from provisioner.identities import ADMIN_USER
from provisioner.kubeconfig import write_kubeconfig
from provisioner.phases import PhaseTime, timed_phase
from provisioner.spec import ClusterSpec
from provisioner.state import read_json

__all__ = ["PHASES", "UpReport", "api_client", "topology_of", "up", "vip_endpoint"]

Progress = Callable[[str], None]
_VERIFY_TIMEOUT_S = 600.0


@dataclass(frozen=True)
class UpReport:
    name: str
    endpoint: str
    kubeconfig: Path
    changes: tuple[str, ...]
    warnings: tuple[Finding, ...]
    phases: tuple[PhaseTime, ...]

    @property
    def changed(self) -> bool:
        return bool(self.changes)


@dataclass
class _Run:
    """What the phases of one `up` hand to each other."""

    spec: ClusterSpec
    files: ClusterFiles
    cloud: Cloud
    state: dict[str, Any]
    progress: Progress
    machines: tuple[Machine, ...] = ()
    certs: ClusterCerts | None = None
    changes: list[str] = field(default_factory=list)
    warnings: list[Finding] = field(default_factory=list)

    @property
    def masters(self) -> tuple[Machine, ...]:
        return tuple(m for m in self.machines if m.role == "master")

    @property
    def nodes(self) -> tuple[Machine, ...]:
        return tuple(m for m in self.machines if m.role == "node")

    def ansible(self, *tags: str) -> None:
        result: PlaybookResult = run_playbook(
            "cluster.yml", workdir=self.files.ansible, inventory=self.files.inventory,
            known_hosts=self.files.known_hosts, tags=tags, forks=len(self.machines))  # fmt: skip
        self.changes.extend(f"{host}: {n} task(s) changed ({','.join(tags)})"
                            for host, n in sorted(result.changed.items()) if n)


def _machines(run: _Run) -> None:
    run.machines, changes = ensure_machines(run.cloud, progress=run.progress)
    run.changes.extend(changes)
    run.warnings.extend(
        Finding(name, "warning", "booted from an image older than this code, which renders its configuration; "
                                 f"if its services fail to start, `provision rebuild --name {run.spec.name}`")
        for name in stale_images(run.cloud, run.machines))


def _preflight(run: _Run) -> None:
    run.warnings.extend(preflight(run.machines, master_ports=(run.spec.api_vip_port,) if run.spec.api_vip else ()))


def _endpoint_host(spec: ClusterSpec) -> str:
    return spec.api_endpoint.rsplit(":", 1)[0] if spec.api_endpoint else "127.0.0.1"


def topology_of(spec: ClusterSpec, machines: tuple[Machine, ...]) -> Topology:
    def hosts(role: str) -> tuple[Host, ...]:
        return tuple(Host(name=m.name, role=m.role, address=m.address) for m in machines if m.role == role)

    vip = VirtualIp(address=spec.api_vip, port=spec.api_vip_port) if spec.api_vip else None
    return Topology(cluster=spec.name, masters=hosts("master"), nodes=hosts("node"),
                    endpoint_host=_endpoint_host(spec), vip=vip)


def vip_endpoint(spec: ClusterSpec, masters: tuple[Machine, ...]) -> str:
    """https://VIP:PORT when the operator reaches the virtual IP: it reaches every master on its private address,
    so it sits on the masters' network. Otherwise (a jump host, forwarded ports) "" and the cloud's balancer."""
    if spec.api_vip and not spec.api_endpoint and masters and all(m.ssh.host == m.address for m in masters):
        return VirtualIp(address=spec.api_vip, port=spec.api_vip_port).url
    return ""


def _pki(run: _Run) -> None:
    """Certificates, one bundle per machine, the inventory and known hosts: all rendered here, nothing sent."""
    topology = topology_of(run.spec, run.machines)
    run.certs = issue_cluster_certs(topology, run.files.pki)
    hosts = []
    for machine in run.machines:
        bundle = render_bundle(topology, topology.host(machine.name), run.certs)
        archive = write_archive(bundle, run.files.bundles / f"{machine.name}.tar.gz.b64")
        hosts.append(InventoryHost(name=machine.name, role=machine.role, address=machine.address,
                                   ssh=machine.ssh, bundle_file=archive, bundle_hash=bundle.hash))
    vip_url = topology.vip.url if topology.vip else ""
    _write_if_changed(run.files.inventory, render_inventory(tuple(hosts), vip_url=vip_url))
    _write_if_changed(run.files.known_hosts, render_known_hosts(tuple(m.ssh for m in run.machines)))


def _write_if_changed(path: Path, text: str) -> None:
    if not path.is_file() or path.read_text() != text:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)


def _etcd(run: _Run) -> None:
    run.ansible("bundle", "etcd")


def _control_plane(run: _Run) -> None:
    run.ansible("control-plane")


def _load_balancer(run: _Run) -> None:
    """The operator's endpoint (see ClusterSpec), then the node-local balancers and the virtual IP's."""
    if run.spec.api_endpoint:
        run.state["endpoint"] = f"https://{run.spec.api_endpoint}"
    elif vip_endpoint(run.spec, run.masters):
        run.state["endpoint"] = vip_endpoint(run.spec, run.masters)
    else:
        balancer, changes = ensure_balancer(run.cloud, run.masters)
        run.changes.extend(changes)
        run.state["endpoint"] = f"https://{balancer.ip}:{balancer.port}"
    if run.nodes or run.spec.api_vip:
        run.ansible("loadbalancer")


def _nodes(run: _Run) -> None:
    if run.nodes:
        run.ansible("node")


def api_client(endpoint: str, certs: ClusterCerts) -> k8s.ApiClient:
    config = k8s.Configuration()
    config.host = endpoint
    config.ssl_ca_cert = str(certs.ca_file)
    config.cert_file = str(certs.clients.admin.cert_file)
    config.key_file = str(certs.clients.admin.key_file)
    return k8s.ApiClient(config)


def _ready_nodes(api: k8s.CoreV1Api) -> set[str]:
    return {n.metadata.name for n in api.list_node(_request_timeout=10).items
            if any(c.type == "Ready" and c.status == "True" for c in (n.status.conditions or []))}


def _verification(run: _Run) -> None:
    """Through the endpoint, as the operator will use it: the API answers and every node is Ready."""
    assert run.certs is not None
    wanted = {m.name for m in run.nodes}
    deadline = time.monotonic() + _VERIFY_TIMEOUT_S
    last = ""
    with api_client(run.state["endpoint"], run.certs) as client:
        api = k8s.CoreV1Api(client)
        while True:
            try:
                missing = wanted - _ready_nodes(api)
                if not missing:
                    return
                last = f"nodes not Ready yet: {', '.join(sorted(missing))}"
            except Exception as e:  # any transport or API error is a reason to keep waiting
                last = f"API at {run.state['endpoint']}: {str(e).splitlines()[0]}"
            if time.monotonic() > deadline:
                raise ProvisionerError(f"cluster {run.spec.name} did not become ready: {last}",
                                       hint=f"see `provision status --name {run.spec.name}` and "
                                            f"`provision logs MACHINE agent`")
            run.progress(last)
            time.sleep(2)


def _kubeconfig(run: _Run) -> None:
    assert run.certs is not None
    path = run.files.admin_kubeconfig
    before = path.read_bytes() if path.is_file() else b""
    admin = run.certs.clients.admin
    write_kubeconfig(path, cluster_name=run.spec.name, server=run.state["endpoint"], ca_file=run.certs.ca_file,
                     cert_file=admin.cert_file, key_file=admin.key_file, user=ADMIN_USER)
    if path.read_bytes() != before:
        run.changes.append(f"wrote {path}")


@dataclass(frozen=True)
class _Phase:
    name: str
    action: Callable[[_Run], None]
    resumable: bool  # skipped when an earlier, failed `up` finished it


PHASES: tuple[_Phase, ...] = (
    _Phase("machines", _machines, resumable=False),
    _Phase("preflight", _preflight, resumable=False),
    _Phase("pki", _pki, resumable=False),
    _Phase("etcd", _etcd, resumable=True),
    _Phase("control plane", _control_plane, resumable=True),
    _Phase("load balancer", _load_balancer, resumable=False),
    _Phase("nodes", _nodes, resumable=True),
    _Phase("verification", _verification, resumable=False),
    _Phase("kubeconfig", _kubeconfig, resumable=False),
)


def _initial_state(files: ClusterFiles, spec: ClusterSpec) -> dict[str, Any]:
    if not files.state_file.is_file():
        return {"spec": spec_to_dict(spec), "completed": [], "finished": False}
    state = read_json(files.state_file)
    before = saved_spec(state)
    if before.masters != spec.masters or before.cloud != spec.cloud:
        raise ProvisionerError(
            f"cluster {spec.name} was created with {before.masters} masters on {before.cloud}; "
            f"changing to {spec.masters} on {spec.cloud} is not supported",
            hint=f"`provision rebuild --name {spec.name}` with the new spec, or keep the old values")
    if state.get("finished", False):
        state["completed"] = []
    state["spec"] = spec_to_dict(spec)
    return state


def up(spec: ClusterSpec, *, progress: Progress = lambda _: None, home: Path | None = None,
       cloud_state: Path | None = None) -> UpReport:
    """Bring the cluster to what `spec` asks; safe to run again at any time (it resumes or changes nothing)."""
    files = cluster_files(spec.name, home=home)
    with locked(files):
        state = _initial_state(files, spec)
        state["finished"] = False
        save(files, state)
        run = _Run(spec=spec, files=files, cloud=open_cloud(spec, state_dir=cloud_state), state=state,
                   progress=progress)
        resume = set(state["completed"])
        times: list[PhaseTime] = []
        try:
            for phase in PHASES:
                if phase.resumable and phase.name in resume:
                    times.append(PhaseTime(phase.name, 0.0, skipped=True))
                    continue
                with timed_phase(times, phase.name, progress):
                    phase.action(run)
                if phase.name not in state["completed"]:
                    state["completed"].append(phase.name)
                save(files, state)
        finally:
            close_connections(files.ansible)
        state["finished"] = True
        save(files, state)
    return UpReport(name=spec.name, endpoint=state["endpoint"], kubeconfig=files.admin_kubeconfig,
                    changes=tuple(run.changes), warnings=tuple(run.warnings), phases=tuple(times))
