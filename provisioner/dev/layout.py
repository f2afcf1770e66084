"""Where a dev cluster's processes listen: each cluster owns a loopback block 127.<block>.0.0/16.

Linux routes all of 127.0.0.0/8 to `lo`, so any address in it can be bound without configuration.
The block is derived from the cluster name (so it is stable and predictable) and, on a clash with
another cluster, moves to the next free one; the choice is recorded in the cluster's state file.
Inside the block: 127.B.0.1 is the load balancer, 127.B.1.<i+1> is master i (etcd member and
API server), and 127.B.2.<j+1> is node j (its agent).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass

__all__ = [
    "APISERVER_PORT",
    "ETCD_CLIENT_PORT",
    "ETCD_PEER_PORT",
    "MASTER_COUNTS",
    "MAX_NODES",
    "Layout",
    "block_candidates",
    "choose_block",
    "node_name",
]

MASTER_COUNTS = (1, 3, 5)
MAX_NODES = 200
ETCD_CLIENT_PORT = 2379
ETCD_PEER_PORT = 2380
APISERVER_PORT = 6443

# 127.0.x.x holds 127.0.0.1 (and whatever else the host runs there); 255 would end in broadcast-like addresses.
_BLOCKS = range(1, 255)


@dataclass(frozen=True)
class Layout:
    name: str
    block: int
    masters: int
    nodes: int = 0

    def __post_init__(self) -> None:
        if self.block not in _BLOCKS:
            raise ValueError(f"loopback block {self.block} outside {_BLOCKS.start}..{_BLOCKS.stop - 1}")
        if self.masters not in MASTER_COUNTS:
            raise ValueError(f"masters must be one of {MASTER_COUNTS}, not {self.masters}")
        if not 0 <= self.nodes <= MAX_NODES:
            raise ValueError(f"nodes must be between 0 and {MAX_NODES}, not {self.nodes}")

    @property
    def lb_address(self) -> str:
        return f"127.{self.block}.0.1"

    @property
    def master_addresses(self) -> tuple[str, ...]:
        return tuple(f"127.{self.block}.1.{i + 1}" for i in range(self.masters))

    @property
    def node_addresses(self) -> tuple[str, ...]:
        return tuple(f"127.{self.block}.2.{j + 1}" for j in range(self.nodes))

    @property
    def server_url(self) -> str:
        """The API as clients see it: through the load balancer."""
        return f"https://{self.lb_address}:{APISERVER_PORT}"


def node_name(index: int) -> str:
    """The Node name of node `index` (its agent registers under it)."""
    return f"node-{index}"


def block_candidates(name: str) -> Iterator[int]:
    """Every block, starting at the one the name hashes to."""
    start = int.from_bytes(hashlib.sha256(name.encode()).digest()[:4], "big") % len(_BLOCKS)
    for i in range(len(_BLOCKS)):
        yield _BLOCKS[(start + i) % len(_BLOCKS)]


def choose_block(name: str, *, taken: set[int], free: Callable[[int], bool]) -> int | None:
    """The first candidate block of `name` that no other cluster records and whose ports are `free`."""
    return next((b for b in block_candidates(name) if b not in taken and free(b)), None)
