"""libcloud compute provider `baremetal`: machines that already exist, listed in an inventory file.

`create_node` claims a free host of the inventory for a cluster and `destroy_node` releases it; the host
itself lives on, so its nodes carry `extra["reusable"] = True` and whoever installed software there must
uninstall it before releasing (`provision down` runs the cleanup role). Claims are kept in a JSON file
under the state root, guarded by a file lock, so separate `provision` processes agree on who owns a host.

Inventory (YAML): `hosts:` a list of {name, address, ssh_port (22), user (root), key, private_address
(default: address; where the other hosts reach it), api_port (6443; where the operator reaches its API
server on `address`), host_key (optional "ssh-ed25519 AAAA...": pinned instead of learnt on first use)}.
"""

from __future__ import annotations

import socket
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import fasteners
import yaml
from libcloud.compute.base import Node, NodeAuthSSHKey, NodeDriver, NodeImage, NodeLocation, NodeSize
from libcloud.compute.types import NodeState

from provisioner.errors import ProvisionerError
from provisioner.infra.cloudstate import default_state_root
from provisioner.state import read_json, write_json

__all__ = ["BareMetalNodeDriver", "InventoryHost", "load_inventory"]

_API_PORT = 6443


@dataclass(frozen=True)
class InventoryHost:
    name: str
    address: str
    key: Path
    ssh_port: int = 22
    user: str = "root"
    private_address: str = ""
    api_port: int = _API_PORT
    host_key: str = ""


def load_inventory(path: Path) -> tuple[InventoryHost, ...]:
    """Parse and check an inventory file; every problem is reported at once."""
    try:
        raw = yaml.safe_load(Path(path).expanduser().read_text()) or {}
    except (OSError, yaml.YAMLError) as e:
        raise ProvisionerError(f"cannot read inventory {path}: {e}", hint="see inventories/ for examples") from e
    entries = raw.get("hosts") if isinstance(raw, dict) else None
    if not isinstance(entries, list) or not entries:
        raise ProvisionerError(
            f"inventory {path}: `hosts` must be a non-empty list", hint="see inventories/ for examples"
        )
    known = set(InventoryHost.__dataclass_fields__)
    problems, hosts = [], []
    for i, entry in enumerate(entries):
        if not isinstance(entry, dict):
            problems.append(f"hosts[{i}]: must be a mapping")
            continue
        unknown = sorted(set(entry) - known)
        missing = sorted({"name", "address", "key"} - set(entry))
        problems += [f"hosts[{i}].{k}: unknown field" for k in unknown]
        problems += [f"hosts[{i}].{k}: required" for k in missing]
        if not unknown and not missing:
            values: dict[str, Any] = dict(entry)
            values["key"] = Path(str(values["key"])).expanduser()
            hosts.append(InventoryHost(**values))
    names = [h.name for h in hosts]
    problems += [f"host {n}: listed twice" for n in sorted({n for n in names if names.count(n) > 1})]
    if problems:
        raise ProvisionerError(
            f"invalid inventory {path}:\n" + "\n".join(f"  - {p}" for p in problems), hint="fix the fields above"
        )
    return tuple(hosts)


class BareMetalNodeDriver(NodeDriver):
    """Nodes are claims on inventory hosts; RUNNING while the host's SSH port answers."""

    type = "baremetal"
    name = "Bare metal (inventory)"
    website = "https://docs.ansible.com/ansible/latest/inventory_guide/"
    features = {"create_node": []}
    NODE_STATE_MAP = {"reachable": NodeState.RUNNING, "unreachable": NodeState.UNKNOWN}

    def __init__(
        self,
        key: str = "baremetal",
        secret: str | None = None,
        secure: bool = True,
        host: str | None = None,
        port: int | None = None,
        *,
        ex_inventory: str | Path,
        ex_state_dir: str | Path | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(key=key, secret=secret, secure=secure, host=host, port=port, **kwargs)
        self._hosts = {h.name: h for h in load_inventory(Path(ex_inventory))}
        root = Path(ex_state_dir) if ex_state_dir else default_state_root()
        self._claims = root / "baremetal-claims.json"

    def list_sizes(self, location: NodeLocation | None = None) -> list[NodeSize]:
        return [NodeSize(id="any", name="any", ram=0, disk=0, bandwidth=None, price=0.0, driver=self)]

    def list_images(self, location: NodeLocation | None = None) -> list[NodeImage]:
        return [NodeImage(id="installed", name="whatever the host runs", driver=self)]

    def create_node(  # type: ignore[override]
        self,
        name: str,
        size: NodeSize | str | None = None,
        image: NodeImage | str | None = None,
        location: NodeLocation | None = None,
        auth: NodeAuthSSHKey | None = None,
        ex_cluster: str = "default",
        ex_ports: tuple[int, ...] = (),
    ) -> Node:
        """Claim the first free inventory host for `name`; size, image and ports are whatever the host has."""
        with self._locked() as claims:
            if name in {c["node"] for c in claims.values()}:
                raise ProvisionerError(f"a bare-metal node named {name!r} is already claimed")
            free = [h for h in self._hosts.values() if h.name not in claims]
            if not free:
                raise ProvisionerError(
                    f"no free host left in the inventory for {name}",
                    hint=f"add hosts, or release some: {', '.join(sorted(claims))}",
                )
            claims[free[0].name] = {"node": name, "cluster": ex_cluster}
        return self._to_node(free[0], name=name, cluster=ex_cluster)

    def list_nodes(self, ex_cluster: str | None = None) -> list[Node]:  # type: ignore[override]
        claims = read_json(self._claims) if self._claims.is_file() else {}
        return [
            self._to_node(self._hosts[h], name=c["node"], cluster=c["cluster"])
            for h, c in sorted(claims.items())
            if h in self._hosts and (ex_cluster is None or c["cluster"] == ex_cluster)
        ]

    def destroy_node(self, node: Node) -> bool:
        """Release the claim; the host keeps running (uninstalling is the caller's job, see module docstring)."""
        with self._locked() as claims:
            host = node.extra["host"]
            if claims.get(host, {}).get("node") != node.name:
                raise ProvisionerError(f"bare-metal node {node.name} is not claimed")
            del claims[host]
        return True

    def wait_until_running(  # type: ignore[override]
        self, nodes: list[Node], wait_period: float = 1.0, timeout: int = 600, **_: Any
    ) -> list[tuple[Node, list[str]]]:
        deadline = time.monotonic() + timeout
        names = {n.name for n in nodes}
        while True:
            current = [n for n in self.list_nodes() if n.name in names]
            late = [n.name for n in current if n.state != NodeState.RUNNING]
            if not late and len(current) == len(names):
                return [(n, n.public_ips) for n in current]
            if time.monotonic() > deadline:
                raise ProvisionerError(
                    f"bare-metal hosts of {', '.join(sorted(late))} do not answer SSH",
                    hint="check that they are powered on and reachable",
                )
            time.sleep(wait_period)

    def _locked(self) -> _Claims:
        return _Claims(self._claims)

    def _to_node(self, host: InventoryHost, *, name: str, cluster: str) -> Node:
        state = "reachable" if _answers(host.address, host.ssh_port) else "unreachable"
        extra = {
            "cluster": cluster,
            "host": host.name,
            "ssh_host": host.address,
            "ssh_port": host.ssh_port,
            "ssh_user": host.user,
            "ssh_key_file": str(host.key),
            "host_key": host.host_key,
            "ports": {_API_PORT: host.api_port},
            "reusable": True,
        }
        return Node(
            id=name,
            name=name,
            state=self.NODE_STATE_MAP[state],
            public_ips=[host.address],
            private_ips=[host.private_address or host.address],
            driver=self,
            extra=extra,
        )


class _Claims:
    """The claims file as a dict, read and written under an inter-process lock."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.lock = fasteners.InterProcessLock(str(path.with_name(path.name + ".lock")))

    def __enter__(self) -> dict[str, dict[str, str]]:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.lock.acquire()
        self.claims: dict[str, dict[str, str]] = read_json(self.path) if self.path.is_file() else {}
        return self.claims

    def __exit__(self, kind: object, *_: object) -> None:
        try:
            if kind is None:
                write_json(self.path, self.claims)
        finally:
            self.lock.release()


def _answers(address: str, port: int) -> bool:
    try:
        with socket.create_connection((address, port), timeout=2) as s:
            return s.recv(4).startswith(b"SSH")
    except OSError:
        return False
