"""The Ansible inventory of a cluster, generated from its machines: the only source of role variables.

Groups: `masters` (also `etcd`: members are stacked on the masters), `nodes`, `cluster` holding both, and
`api_vip`: the masters when the API has a virtual IP (they run its HAProxy and keepalived; empty otherwise).
Host variables: how to reach the host (SSH target), which bundle it gets and the hash that lets an unchanged
host be skipped, and the member URL etcd's health check asks. Known host keys are written next to it.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from provisioner.configure.topology import ETCD_CLIENT_PORT

__all__ = ["InventoryHost", "SshTarget", "render_inventory", "render_known_hosts"]


@dataclass(frozen=True)
class SshTarget:
    host: str
    port: int
    user: str
    key_file: Path
    host_key: str = ""  # "ssh-ed25519 AAAA..." when known in advance (local VMs); else learnt on first contact

    @property
    def known_hosts_name(self) -> str:
        return self.host if self.port == 22 else f"[{self.host}]:{self.port}"


@dataclass(frozen=True)
class InventoryHost:
    name: str
    role: str  # "master" or "node"
    address: str  # where the other machines reach it
    ssh: SshTarget
    bundle_file: Path
    bundle_hash: str


def _host_vars(host: InventoryHost) -> dict[str, Any]:
    values: dict[str, Any] = {
        "ansible_host": host.ssh.host,
        "ansible_port": host.ssh.port,
        "ansible_user": host.ssh.user,
        "ansible_ssh_private_key_file": str(host.ssh.key_file),
        "common_bundle_file": str(host.bundle_file),
        "common_bundle_hash": host.bundle_hash,
    }
    if host.role == "master":
        values["etcd_client_url"] = f"https://{host.address}:{ETCD_CLIENT_PORT}"
    return values


def render_inventory(hosts: tuple[InventoryHost, ...], *, vip_url: str = "") -> str:
    """`vip_url` (https://VIP:PORT): the loadbalancer role on the masters waits until /readyz answers there."""
    masters = {h.name: _host_vars(h) for h in hosts if h.role == "master"}
    nodes = {h.name: _host_vars(h) for h in hosts if h.role == "node"}
    vip_hosts = {name: {"loadbalancer_ready_url": f"{vip_url}/readyz"} for name in masters} if vip_url else {}
    inventory = {
        "all": {
            "vars": {"ansible_python_interpreter": "/usr/bin/python3"},
            "children": {
                "cluster": {"children": {"masters": {"hosts": masters}, "nodes": {"hosts": nodes}}},
                "etcd": {"children": {"masters": {}}},
                "api_vip": {"hosts": vip_hosts},
            },
        }
    }
    return yaml.safe_dump(inventory, sort_keys=False)


def render_known_hosts(targets: tuple[SshTarget, ...]) -> str:
    return "".join(f"{t.known_hosts_name} {' '.join(t.host_key.split()[:2])}\n" for t in targets if t.host_key)
