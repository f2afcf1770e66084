"""The scheduling queue: pod keys waiting for a cycle, in backoff, or parked as unschedulable.

Active and backing-off pods live in a client `WorkQueue` (per-key exponential backoff, 1 s to 10 s as
in Kubernetes). A pod that fit nowhere is parked until a cluster event that could make it fit
(`move`), chosen by the plugins that rejected it: a node added or changed, a pod bound or removed.
Parked pods are also retried after `UNSCHEDULABLE_TIMEOUT` so nothing waits forever on a missed event.
"""

from __future__ import annotations

import asyncio
import time

from provisioner.controlplane.client import ExponentialBackoff, WorkQueue
from provisioner.controlplane.scheduler.framework import ALL_EVENTS, ClusterEvent

__all__ = ["UNSCHEDULABLE_TIMEOUT", "SchedulingQueue"]

UNSCHEDULABLE_TIMEOUT = 60.0
_FLUSH_PERIOD = 15.0


class SchedulingQueue:
    def __init__(self, *, initial_backoff: float = 1.0, max_backoff: float = 10.0) -> None:
        self._queue: WorkQueue[str] = WorkQueue(backoff=ExponentialBackoff(base=initial_backoff, cap=max_backoff))
        self._unschedulable: dict[str, tuple[float, frozenset[ClusterEvent]]] = {}

    def __len__(self) -> int:
        return len(self._queue)

    @property
    def unschedulable(self) -> frozenset[str]:
        return frozenset(self._unschedulable)

    def add(self, key: str) -> None:
        """A new or changed pending pod: schedule it now (a change may be what it was waiting for)."""
        self._unschedulable.pop(key, None)
        self._queue.add(key)

    async def pop(self) -> str | None:
        """The next key (None after shutdown); the caller must call `done` after its cycle."""
        return await self._queue.get()

    def done(self, key: str) -> None:
        self._queue.done(key)

    def scheduled(self, key: str) -> None:
        self._queue.forget(key)

    def park(self, key: str, events: frozenset[ClusterEvent] = ALL_EVENTS) -> None:
        """The pod fits nowhere: wait for one of `events`."""
        self._unschedulable[key] = (time.monotonic(), events)

    def backoff(self, key: str) -> None:
        """An error or a failed binding: retry after the pod's backoff."""
        self._queue.add_rate_limited(key)

    def remove(self, key: str) -> None:
        self._unschedulable.pop(key, None)
        self._queue.forget(key)

    def move(self, event: ClusterEvent) -> None:
        """`event` happened: retry the parked pods waiting for it, each after its own backoff."""
        for key in [k for k, (_, events) in self._unschedulable.items() if event in events]:
            del self._unschedulable[key]
            self._queue.add_rate_limited(key)

    async def flush_forever(self) -> None:
        """Retry pods parked longer than UNSCHEDULABLE_TIMEOUT."""
        while not self._queue.shutting_down:
            await asyncio.sleep(_FLUSH_PERIOD)
            deadline = time.monotonic() - UNSCHEDULABLE_TIMEOUT
            for key in [k for k, (since, _) in self._unschedulable.items() if since < deadline]:
                del self._unschedulable[key]
                self._queue.add_rate_limited(key)

    def shutdown(self) -> None:
        self._queue.shutdown()
