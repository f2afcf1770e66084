"""Per-pod cgroups with cpu and memory limits, on cgroup v2, cgroup v1, or (saying so) on neither.

Hosts differ: Debian VMs with systemd have the pure v2 hierarchy at /sys/fs/cgroup; the development
host mounts v1 controllers at /sys/fs/cgroup/{cpu,memory,pids} with an empty v2 at .../unified.
`detect_cgroups()` picks the first layout that works by actually creating the agent's parent group;
when none does, `NoCgroups.problem` says why and the agent reports it in a Node condition.
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from provisioner.controlplane.quantity import parse_quantity

__all__ = ["CgroupV1", "CgroupV2", "Cgroups", "Limits", "NoCgroups", "detect_cgroups", "pod_limits"]

log = logging.getLogger(__name__)

CFS_PERIOD_US = 100_000
_V1_CONTROLLERS = ("cpu", "memory", "pids")


@dataclass(frozen=True)
class Limits:
    """A pod's summed container limits; None means unlimited."""

    milli_cpu: int | None = None
    memory: int | None = None


class Cgroups(Protocol):
    name: str
    problem: str  # why limits are not enforced; "" when they are

    def create(self, group: str, limits: Limits) -> list[Path]:
        """Make the pod's group(s) and set limits; the `cgroup.procs` files a process must join."""
        ...

    def remove(self, group: str) -> None: ...


def _write(path: Path, value: str) -> None:
    path.write_text(value)


def _rmdir(path: Path) -> None:
    with contextlib.suppress(FileNotFoundError, OSError):
        path.rmdir()


class CgroupV2:
    """The unified hierarchy: one directory per pod under `<root>/<parent>` with cpu.max and memory.max."""

    name = "cgroup2"
    problem = ""

    def __init__(self, root: Path, parent: str) -> None:
        self.base = root / parent
        self.base.mkdir(exist_ok=True)
        available = (root / "cgroup.controllers").read_text().split()
        wanted = [c for c in ("cpu", "memory", "pids") if c in available]
        if "cpu" not in wanted or "memory" not in wanted:
            raise OSError(f"cgroup2 at {root} lacks the cpu or memory controller (has: {' '.join(available)})")
        for directory in (root, self.base):
            _write(directory / "cgroup.subtree_control", " ".join(f"+{c}" for c in wanted))

    def create(self, group: str, limits: Limits) -> list[Path]:
        path = self.base / group
        path.mkdir(exist_ok=True)
        if limits.milli_cpu is not None:
            _write(path / "cpu.max", f"{max(1000, limits.milli_cpu * CFS_PERIOD_US // 1000)} {CFS_PERIOD_US}")
        if limits.memory is not None:
            _write(path / "memory.max", str(limits.memory))
        return [path / "cgroup.procs"]

    def remove(self, group: str) -> None:
        _rmdir(self.base / group)


class CgroupV1:
    """Legacy per-controller hierarchies: cfs quota in cpu/, limit_in_bytes in memory/, pids/ for accounting."""

    name = "cgroup1"
    problem = ""

    def __init__(self, root: Path, parent: str) -> None:
        self.bases = {c: root / c / parent for c in _V1_CONTROLLERS if (root / c / "cgroup.procs").exists()}
        if "cpu" not in self.bases or "memory" not in self.bases:
            raise OSError(f"no cgroup v1 cpu and memory hierarchies under {root}")
        for base in self.bases.values():
            base.mkdir(exist_ok=True)

    def create(self, group: str, limits: Limits) -> list[Path]:
        paths = {c: base / group for c, base in self.bases.items()}
        for path in paths.values():
            path.mkdir(exist_ok=True)
        if limits.milli_cpu is not None:
            _write(paths["cpu"] / "cpu.cfs_period_us", str(CFS_PERIOD_US))
            quota = max(1000, limits.milli_cpu * CFS_PERIOD_US // 1000)
            _write(paths["cpu"] / "cpu.cfs_quota_us", str(quota))
        if limits.memory is not None:
            _write(paths["memory"] / "memory.limit_in_bytes", str(limits.memory))
        return [path / "cgroup.procs" for path in paths.values()]

    def remove(self, group: str) -> None:
        for base in self.bases.values():
            _rmdir(base / group)


@dataclass(frozen=True)
class NoCgroups:
    """Processes run unconfined; `problem` is shown on the Node."""

    problem: str
    name: str = "none"

    def create(self, group: str, limits: Limits) -> list[Path]:
        return []

    def remove(self, group: str) -> None:
        return None


def detect_cgroups(*, root: Path = Path("/sys/fs/cgroup"), parent: str = "provisioner") -> Cgroups:
    """The first cgroup layout that works here, or NoCgroups explaining why none does."""
    problems: list[str] = []
    if os.geteuid() != 0:
        return NoCgroups(f"cpu/memory limits are not enforced: the agent runs as uid {os.geteuid()}, not root")
    if (root / "cgroup.controllers").exists():
        try:
            return CgroupV2(root, parent)
        except OSError as exc:
            problems.append(f"cgroup2: {exc}")
    try:
        return CgroupV1(root, parent)
    except OSError as exc:
        problems.append(f"cgroup1: {exc}")
    return NoCgroups("cpu/memory limits are not enforced: " + "; ".join(problems))


def pod_limits(containers: Sequence[Mapping[str, Any]]) -> Limits:
    """Sum of the containers' limits; a container without a limit makes the pod unlimited for that resource."""
    cpu: int | None = 0
    memory: int | None = 0
    for container in containers:
        limits = (container.get("resources") or {}).get("limits") or {}
        cpu = None if cpu is None or "cpu" not in limits else cpu + math.ceil(parse_quantity(limits["cpu"]) * 1000)
        memory = None if memory is None or "memory" not in limits else memory + math.ceil(
            parse_quantity(limits["memory"]))
    return Limits(cpu, memory)
