"""What an operator does with a cluster besides `up`: plan, status, down, ssh, logs and its kubeconfig.

Synchronous, called from the CLI; remote reads go through `remote.py` (one SSH connection per machine).
"""

from __future__ import annotations

import json
import shutil
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from kubernetes import client as k8s
from libcloud.compute.types import NodeState

from provisioner.cluster.machines import (
    Machine,
    balancer_name,
    find_balancer,
    machine_plan,
    open_cloud,
    to_machine,
    wanted,
)
from provisioner.cluster.remote import connect, run
from provisioner.cluster.state import cluster_files, load_state, locked, saved_spec
from provisioner.cluster.up import api_client, topology_of, vip_endpoint
from provisioner.configure.bundle import STATE_DIR, render_bundle
from provisioner.configure.certs import issue_cluster_certs
from provisioner.configure.runner import close_connections, run_playbook
from provisioner.errors import ProvisionerError
from provisioner.spec import ClusterSpec

__all__ = ["DownReport", "MachineStatus", "Plan", "Status", "down", "kubeconfig_path", "logs", "plan", "ssh_argv",
           "status"]


def _running_machines(spec: ClusterSpec, *, cloud_state: Path | None) -> list[Machine]:
    cloud = open_cloud(spec, state_dir=cloud_state)
    roles = {name: role for name, role, _ in wanted(spec)}
    return [to_machine(n, roles.get(n.name, "node")) for n in cloud.compute.list_nodes(ex_cluster=spec.name)
            if n.state == NodeState.RUNNING]


def _machine(name: str, machine: str, *, home: Path | None, cloud_state: Path | None) -> Machine:
    _, state = load_state(name, home=home)
    found = {m.name: m for m in _running_machines(saved_spec(state), cloud_state=cloud_state)}
    if machine not in found:
        raise ProvisionerError(f"no running machine {machine!r} in cluster {name}",
                               hint=f"running: {', '.join(sorted(found)) or 'none'}")
    return found[machine]


@dataclass(frozen=True)
class Plan:
    create: tuple[str, ...]
    start: tuple[str, ...]
    configure: tuple[str, ...]  # machines whose installed bundle differs from what `up` would push
    unchanged: tuple[str, ...]
    balancer: str  # "create", "keep", or "none (virtual IP https://VIP:PORT)" when the operator reaches it


def _installed_hash(machine: Machine) -> str:
    with connect(machine.name, machine.ssh) as conn:
        return run(conn, f"cat {STATE_DIR}/bundle.sha256 2>/dev/null || true")[1].strip()


def plan(spec: ClusterSpec, *, home: Path | None = None, cloud_state: Path | None = None) -> Plan:
    """What `up` would do, found by listing and reading only; certificates are compared only if they exist."""
    cloud = open_cloud(spec, state_dir=cloud_state)
    machines_plan = machine_plan(cloud)
    files = cluster_files(spec.name, home=home)
    running = [m for m in _running_machines(spec, cloud_state=cloud_state) if m.name in machines_plan.ready]
    configure, unchanged = [], []
    if (files.pki / "ca.crt").is_file() and running and not machines_plan.create:
        topology = topology_of(spec, tuple(running))
        certs = issue_cluster_certs(topology, files.pki)
        with ThreadPoolExecutor(max_workers=len(running)) as pool:
            installed = dict(zip([m.name for m in running], pool.map(_installed_hash, running), strict=True))
        for m in running:
            same = installed[m.name] == render_bundle(topology, topology.host(m.name), certs).hash
            (unchanged if same else configure).append(m.name)
    else:
        configure = [m.name for m in running]
    vip = vip_endpoint(spec, tuple(m for m in running if m.role == "master"))
    balancer = f"none (virtual IP {vip})" if vip else "keep" if find_balancer(cloud) else "create"
    return Plan(create=machines_plan.create, start=machines_plan.start, configure=tuple(configure),
                unchanged=tuple(unchanged), balancer=balancer)


@dataclass(frozen=True)
class MachineStatus:
    name: str
    state: str
    address: str
    units: dict[str, str]  # unit -> systemd active state


@dataclass(frozen=True)
class Status:
    name: str
    endpoint: str
    machines: tuple[MachineStatus, ...]
    etcd: tuple[tuple[str, str], ...]  # (member endpoint, "leader"/"follower"/error)
    nodes: tuple[tuple[str, bool], ...] | str  # (name, Ready) or why the API could not be asked


def _units(machine: Machine) -> dict[str, str]:
    with connect(machine.name, machine.ssh) as conn:
        _, out, _ = run(conn, f"for u in $(awk '{{print $2}}' {STATE_DIR}/installed-units 2>/dev/null); do "
                              "echo \"$u $(systemctl is-active $u)\"; done")
    return dict(line.split(" ", 1) for line in out.splitlines() if " " in line)


def _etcd_members(master: Machine, machines: list[Machine]) -> tuple[tuple[str, str], ...]:
    endpoints = ",".join(f"https://{m.address}:2379" for m in machines if m.role == "master")
    pki = "/etc/provisioner/pki"
    command = (f"ETCDCTL_API=3 etcdctl --endpoints={endpoints} --cacert={pki}/ca.crt --cert={pki}/etcd-client.crt "
               f"--key={pki}/etcd-client.key --command-timeout=10s endpoint status -w json")
    with connect(master.name, master.ssh) as conn:
        code, out, err = run(conn, command)
    members: list[tuple[str, str]] = []
    for entry in json.loads(out or "[]"):
        header = entry["Status"]["header"]
        members.append((entry["Endpoint"], "leader" if header["member_id"] == entry["Status"]["leader"]
                        else "follower"))
    reached = {e for e, _ in members}
    members += [(e, f"unreachable: {err.strip().splitlines()[-1] if err.strip() else code}")
                for e in endpoints.split(",") if e not in reached]
    return tuple(members)


def status(name: str, *, home: Path | None = None, cloud_state: Path | None = None) -> Status:
    files, state = load_state(name, home=home)
    spec = saved_spec(state)
    cloud = open_cloud(spec, state_dir=cloud_state)
    nodes = cloud.compute.list_nodes(ex_cluster=name)
    roles = {n: r for n, r, _ in wanted(spec)}
    running = [to_machine(n, roles.get(n.name, "node")) for n in nodes if n.state == NodeState.RUNNING]
    with ThreadPoolExecutor(max_workers=max(1, len(running))) as pool:
        units = dict(zip([m.name for m in running], pool.map(_units, running), strict=True))
    machines = tuple(MachineStatus(name=n.name, state=str(n.state), address=str((n.private_ips or [""])[0]),
                                   units=units.get(n.name, {})) for n in nodes)
    masters = [m for m in running if m.role == "master"]
    everyone = [to_machine(n, roles.get(n.name, "node")) for n in nodes]  # a stopped member shows as unreachable
    etcd = _etcd_members(masters[0], everyone) if masters else ()
    endpoint = state.get("endpoint", "")
    api_nodes: tuple[tuple[str, bool], ...] | str = "no endpoint yet"
    if endpoint and running:
        certs = issue_cluster_certs(topology_of(spec, tuple(running)), files.pki)
        try:
            with api_client(endpoint, certs) as client:
                items = k8s.CoreV1Api(client).list_node(_request_timeout=10).items
            api_nodes = tuple((n.metadata.name, any(c.type == "Ready" and c.status == "True"
                                                    for c in (n.status.conditions or []))) for n in items)
        except Exception as e:  # shown to the operator as the reason
            api_nodes = str(e).splitlines()[0]
    return Status(name=name, endpoint=endpoint, machines=machines, etcd=etcd, nodes=api_nodes)


@dataclass(frozen=True)
class DownReport:
    destroyed: tuple[str, ...]
    uninstalled: tuple[str, ...]
    leftovers: tuple[str, ...]  # what a final listing still found (empty when down succeeded)


def down(name: str, *, home: Path | None = None, cloud_state: Path | None = None) -> DownReport:
    """Uninstall from machines that outlive the cluster, destroy machines and balancer, list to check, forget."""
    files, state = load_state(name, home=home)
    spec = saved_spec(state)
    with locked(files):
        cloud = open_cloud(spec, state_dir=cloud_state)
        nodes = cloud.compute.list_nodes(ex_cluster=name)
        # Every claimed host, whatever the 2 s banner probe behind `state` said: a busy TCG master answers late, and
        # it must not be released still installed. One that is really gone fails the playbook, and `down` with it.
        reusable = [n for n in nodes if n.extra.get("reusable")]
        if reusable and files.inventory.is_file():
            try:
                run_playbook("cleanup.yml", workdir=files.ansible, inventory=files.inventory,
                             known_hosts=files.known_hosts, forks=len(reusable))
            finally:
                close_connections(files.ansible)
        balancer = find_balancer(cloud)
        if balancer is not None:
            cloud.balancers.destroy_balancer(balancer)
        for node in nodes:
            cloud.compute.destroy_node(node)
        leftovers = [f"machine {n.name}" for n in cloud.compute.list_nodes(ex_cluster=name)]
        leftovers += [f"load balancer {b.name}" for b in cloud.balancers.list_balancers()
                      if b.name == balancer_name(spec)]
        if leftovers:
            raise ProvisionerError(f"down left {', '.join(leftovers)} behind", hint="run `provision down` again")
        shutil.rmtree(files.root)
    return DownReport(destroyed=tuple(n.name for n in nodes), uninstalled=tuple(n.name for n in reusable),
                      leftovers=())


def kubeconfig_path(name: str, *, home: Path | None = None) -> Path:
    files, _ = load_state(name, home=home)
    if not files.admin_kubeconfig.is_file():
        raise ProvisionerError(f"cluster {name} has no kubeconfig yet", hint=f"run `provision up --name {name}`")
    return files.admin_kubeconfig


def ssh_argv(name: str, machine: str, *, home: Path | None = None, cloud_state: Path | None = None,
             command: tuple[str, ...] = ()) -> list[str]:
    """The `ssh` command line that logs into `machine` (pinned host key when the cloud knows it)."""
    m = _machine(name, machine, home=home, cloud_state=cloud_state)
    files = cluster_files(name, home=home)
    return ["ssh", "-i", str(m.ssh.key_file), "-p", str(m.ssh.port), "-o", "IdentitiesOnly=yes",
            "-o", f"UserKnownHostsFile={files.known_hosts}", "-o", "StrictHostKeyChecking=accept-new",
            f"{m.ssh.user}@{m.ssh.host}", *command]


def logs(name: str, machine: str, component: str | None = None, *, lines: int = 200, home: Path | None = None,
         cloud_state: Path | None = None) -> str:
    """The journal of one component (`provisioner-<component>`), or of every provisioner unit."""
    m = _machine(name, machine, home=home, cloud_state=cloud_state)
    units = f"-u provisioner-{component}" if component else "-u 'provisioner-*'"
    with connect(m.name, m.ssh) as conn:
        code, out, err = run(conn, f"journalctl --no-pager -n {lines} {units}")
    if code != 0:
        raise ProvisionerError(f"journalctl on {machine} failed: {err.strip()}")
    return out
