"""The local cloud's records on disk, so every `provision` process sees the same VMs, networks and volumes.

Layout under the state root (`$PROVISIONER_HOME/local-cloud/` by default):
  nodes/<name>/node.json       one VM (plus its overlay, seed, monitor socket and serial log in that directory)
  clusters/<name>/cluster.json one lab network (plus the vde_switch sockets in that directory)
  volumes/<name>.json          one volume (next to <name>.qcow2)
Writers hold `lock()` (an inter-process file lock) while they read, decide and write; a VM's boot happens
outside the lock.
"""

from __future__ import annotations

import dataclasses
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import fasteners

from provisioner.state import provisioner_home, read_json, write_json

__all__ = ["CloudState", "ClusterRecord", "NodeRecord", "VolumeRecord", "default_state_root"]


@dataclass(frozen=True)
class NodeRecord:
    """A VM as the driver left it; `state` is what was asked for ("creating", "booting", "running", "stopped")."""

    name: str
    cluster: str
    size: str
    image: str
    state: str
    ssh_port: int
    lab_address: str
    lab_mac: str
    machine_id: str
    host_key: str
    created: float
    pid: int = 0
    ports: dict[str, int] = field(default_factory=dict)
    lab_link_up: bool = True


@dataclass(frozen=True)
class ClusterRecord:
    """A lab network: `index` is the third octet of its 10.88.<index>.0/24 subnet."""

    name: str
    index: int


@dataclass(frozen=True)
class VolumeRecord:
    name: str
    size_gb: int
    node: str = ""


def default_state_root() -> Path:
    return provisioner_home() / "local-cloud"


class CloudState:
    """Typed access to the record files; callers hold `lock()` around read-modify-write sequences."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self._threads = threading.Lock()  # file locks exclude processes, not threads of one process

    @contextmanager
    def lock(self) -> Iterator[None]:
        self.root.mkdir(parents=True, exist_ok=True)
        with self._threads, fasteners.InterProcessLock(str(self.root / ".lock")):
            yield

    def node_dir(self, name: str) -> Path:
        return self.root / "nodes" / name

    def cluster_dir(self, name: str) -> Path:
        return self.root / "clusters" / name

    def volume_file(self, name: str) -> Path:
        return self.root / "volumes" / f"{name}.qcow2"

    def nodes(self) -> list[NodeRecord]:
        return [_load(NodeRecord, p) for p in sorted(self.root.glob("nodes/*/node.json"))]

    def node(self, name: str) -> NodeRecord | None:
        path = self.node_dir(name) / "node.json"
        return _load(NodeRecord, path) if path.is_file() else None

    def save_node(self, record: NodeRecord) -> None:
        write_json(self.node_dir(record.name) / "node.json", dataclasses.asdict(record))

    def clusters(self) -> list[ClusterRecord]:
        return [_load(ClusterRecord, p) for p in sorted(self.root.glob("clusters/*/cluster.json"))]

    def save_cluster(self, record: ClusterRecord) -> None:
        write_json(self.cluster_dir(record.name) / "cluster.json", dataclasses.asdict(record))

    def volumes(self) -> list[VolumeRecord]:
        return [_load(VolumeRecord, p) for p in sorted(self.root.glob("volumes/*.json"))]

    def volume(self, name: str) -> VolumeRecord | None:
        path = self.root / "volumes" / f"{name}.json"
        return _load(VolumeRecord, path) if path.is_file() else None

    def save_volume(self, record: VolumeRecord) -> None:
        write_json(self.root / "volumes" / f"{record.name}.json", dataclasses.asdict(record))

    def remove_volume(self, name: str) -> None:
        (self.root / "volumes" / f"{name}.json").unlink(missing_ok=True)
        self.volume_file(name).unlink(missing_ok=True)


def _load(cls: Any, path: Path) -> Any:
    data = read_json(path)
    known = {f.name for f in dataclasses.fields(cls)}
    return cls(**{k: v for k, v in data.items() if k in known})
