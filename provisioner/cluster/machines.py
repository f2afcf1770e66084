"""The machines of a cluster and its API endpoint, obtained through libcloud drivers only.

Which drivers serve a cloud is a table (`CLOUDS`): a compute driver, a load-balancer driver for the API
endpoint and, when the cloud boots our image, how to get that image. Nothing here branches on a
provider's name; what a node offers (SSH target, forwarded ports, whether it outlives `destroy_node`)
comes from `Node.extra`, which our drivers fill the same way.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from libcloud.compute.base import Node, NodeDriver
from libcloud.compute.providers import get_driver as get_compute
from libcloud.compute.types import NodeState
from libcloud.loadbalancer.base import Algorithm, Driver, LoadBalancer, Member
from libcloud.loadbalancer.providers import get_driver as get_balancer
from libcloud.loadbalancer.types import State as LbState

from provisioner.configure.inventory import SshTarget
from provisioner.configure.topology import API_PORT
from provisioner.errors import ProvisionerError
from provisioner.infra.drivers import register_drivers
from provisioner.infra.image import build_image, current_inputs
from provisioner.spec import ClusterSpec

__all__ = ["CLOUDS", "Cloud", "Machine", "MachinePlan", "balancer_name", "ensure_balancer", "ensure_machines",
           "find_balancer", "machine_plan", "open_cloud", "stale_images", "to_machine", "wanted"]

Progress = Callable[[str], None]
_BOOT_TIMEOUT_S = 900


@dataclass(frozen=True)
class CloudProfile:
    compute: str  # libcloud compute provider name
    balancer: str  # libcloud load-balancer provider name for the API endpoint
    image: Callable[[Progress], str] | None  # returns the image id to boot; None: the machines exist already
    current_image: Callable[[], str] | None  # the image id the current code would boot, without building it


def _local_image(progress: Progress) -> str:
    return build_image(progress=progress).hash


CLOUDS: dict[str, CloudProfile] = {
    "local": CloudProfile(compute="local", balancer="haproxy", image=_local_image,
                          current_image=lambda: current_inputs().image_hash),
    "baremetal": CloudProfile(compute="baremetal", balancer="haproxy", image=None, current_image=None),
}


@dataclass(frozen=True)
class Machine:
    name: str
    role: str  # "master" or "node"
    address: str  # private address: where the other machines reach it
    ssh: SshTarget
    api_port: int  # where the operator reaches this master's API server on ssh.host (0 for nodes)
    reusable: bool  # outlives destroy_node (bare metal): `down` must uninstall from it
    image: str = ""  # the image it booted from, when the cloud knows


@dataclass(frozen=True)
class Cloud:
    spec: ClusterSpec
    profile: CloudProfile
    compute: NodeDriver
    balancers: Driver


def open_cloud(spec: ClusterSpec, *, state_dir: Path | None = None) -> Cloud:
    profile = CLOUDS.get(spec.cloud)
    if profile is None:
        raise ProvisionerError(f"cloud {spec.cloud!r} cannot run `provision up` yet",
                               hint=f"use one of: {', '.join(CLOUDS)}")
    register_drivers()
    kwargs: dict[str, Any] = {"ex_state_dir": state_dir} if state_dir else {}
    compute_kwargs = dict(kwargs, ex_inventory=spec.inventory) if spec.inventory else kwargs
    return Cloud(spec=spec, profile=profile, compute=get_compute(profile.compute)(**compute_kwargs),
                 balancers=get_balancer(profile.balancer)(**kwargs))


def wanted(spec: ClusterSpec) -> tuple[tuple[str, str, str], ...]:
    """(name, role, size) of every machine the spec asks for."""
    return (*((f"{spec.name}-m{i}", "master", spec.master_size) for i in range(spec.masters)),
            *((f"{spec.name}-n{i}", "node", spec.node_size) for i in range(spec.nodes)))


def to_machine(node: Node, role: str) -> Machine:
    extra = node.extra
    return Machine(
        name=node.name, role=role, address=str((node.private_ips or node.public_ips)[0]),
        ssh=SshTarget(host=extra["ssh_host"], port=int(extra["ssh_port"]), user=extra["ssh_user"],
                      key_file=Path(extra["ssh_key_file"]), host_key=extra.get("host_key", "")),
        api_port=int(extra.get("ports", {}).get(API_PORT, 0)) if role == "master" else 0,
        reusable=bool(extra.get("reusable", False)), image=node.image.id if node.image else "",
    )


@dataclass(frozen=True)
class MachinePlan:
    create: tuple[str, ...]
    start: tuple[str, ...]
    ready: tuple[str, ...]
    extra: tuple[str, ...]  # machines of this cluster the spec no longer asks for


def machine_plan(cloud: Cloud) -> MachinePlan:
    existing = {n.name: n for n in cloud.compute.list_nodes(ex_cluster=cloud.spec.name)}
    names = [name for name, _, _ in wanted(cloud.spec)]
    missing = tuple(n for n in names if n not in existing)
    stopped = tuple(n for n in names if n in existing and existing[n].state == NodeState.STOPPED)
    return MachinePlan(create=missing, start=stopped,
                       ready=tuple(n for n in names if n not in missing and n not in stopped),
                       extra=tuple(sorted(set(existing) - set(names))))


def stale_images(cloud: Cloud, machines: tuple[Machine, ...]) -> list[str]:
    """Machines booted from an image older than the current code (they run that older code)."""
    if cloud.profile.current_image is None:
        return []
    current = cloud.profile.current_image()
    return [m.name for m in machines if m.image and m.image != current]


def ensure_machines(cloud: Cloud, *, progress: Progress) -> tuple[tuple[Machine, ...], list[str]]:
    """Create what is missing, start what is stopped, wait until all answer SSH; returns machines and changes."""
    plan = machine_plan(cloud)
    changes: list[str] = []
    existing = {n.name: n for n in cloud.compute.list_nodes(ex_cluster=cloud.spec.name)}
    image = cloud.profile.image(progress) if plan.create and cloud.profile.image else ""
    for name, role, size in wanted(cloud.spec):
        if name in plan.create:
            progress(f"creating {name}")
            ports = (API_PORT,) if role == "master" else ()
            existing[name] = cloud.compute.create_node(name=name, size=size, image=image,
                                                       ex_cluster=cloud.spec.name, ex_ports=ports)
            changes.append(f"created {name}")
        elif name in plan.start:
            progress(f"starting {name}")
            cloud.compute.start_node(existing[name])
            changes.append(f"started {name}")
        elif existing[name].state == NodeState.ERROR:
            raise ProvisionerError(f"machine {name} is in an error state",
                                   hint="see `provision status`; `provision down` then `up` recreates it")
    progress(f"waiting for {len(existing)} machines to answer SSH")
    nodes = [existing[name] for name, _, _ in wanted(cloud.spec)]
    # Probing slowly: under TCG every SSH probe forks an sshd child in a guest that is busy booting.
    running = cloud.compute.wait_until_running(nodes, wait_period=3, timeout=_BOOT_TIMEOUT_S)
    roles = {name: role for name, role, _ in wanted(cloud.spec)}
    return tuple(to_machine(node, roles[node.name]) for node, _ in running), changes


def balancer_name(spec: ClusterSpec) -> str:
    return f"{spec.name}-api"


def find_balancer(cloud: Cloud) -> LoadBalancer | None:
    return next((b for b in cloud.balancers.list_balancers() if b.name == balancer_name(cloud.spec)), None)


def ensure_balancer(cloud: Cloud, masters: tuple[Machine, ...]) -> tuple[LoadBalancer, list[str]]:
    """The operator's API endpoint: a balancer over every master's API port; members follow the masters."""
    members = [Member(id=None, ip=m.ssh.host, port=m.api_port) for m in masters]
    balancer = find_balancer(cloud)
    if balancer is not None and balancer.state != LbState.RUNNING:  # its process is gone: start it afresh
        cloud.balancers.destroy_balancer(balancer)
        balancer = None
    if balancer is None:
        created = cloud.balancers.create_balancer(name=balancer_name(cloud.spec), port=0, protocol="tcp",
                                                  algorithm=Algorithm.ROUND_ROBIN, members=members)
        return created, [f"created load balancer {created.name} on {created.ip}:{created.port}"]
    changes = []
    current = {(m.ip, int(m.port)) for m in cloud.balancers.balancer_list_members(balancer)}
    for member in members:
        if (member.ip, member.port) not in current:
            cloud.balancers.balancer_attach_member(balancer, member)
            changes.append(f"added {member.ip}:{member.port} to {balancer.name}")
    return balancer, changes
