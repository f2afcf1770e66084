"""One etcd watch per process, fanned out in-process to every API watcher.

Concurrency model: `run()` is a root task that follows every change under the prefix (resuming
from the last revision + 1 when etcd fails over) and keeps a ring of recent events. `events()`
replays the ring from the requested revision and then follows live events, so a hundred watchers
cost one etcd watch. A revision older than the ring falls back to a direct etcd watch, which
raises `Compacted` when etcd no longer has it. The ring holds decoded objects (a few KiB each), so it
stays small: a watcher further behind costs one etcd watch of its own, nothing more. Registration
and the ring snapshot happen without an await in between, so no event is lost or duplicated
between replay and live delivery.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

from provisioner.controlplane.store.errors import Compacted, StoreError, Unavailable
from provisioner.controlplane.store.kv import Store, WatchEvent

__all__ = ["PrefixMirror", "WatchCache"]

log = logging.getLogger(__name__)


@dataclass(eq=False)
class _Subscriber:
    prefix: str
    queue: asyncio.Queue[WatchEvent | StoreError] = field(default_factory=asyncio.Queue)


class WatchCache:
    """Shared watch over `prefix`; `capacity` recent events are kept for resuming watchers."""

    def __init__(self, store: Store, *, prefix: str = "/registry/", capacity: int = 4096,
                 max_backlog: int = 50_000) -> None:
        self._store = store
        self._prefix = prefix
        self._ring: deque[WatchEvent] = deque(maxlen=capacity)
        self._origin = 0  # every event with rev > _origin is in the ring or on its way
        self._revision = 0  # highest revision seen
        self._subscribers: set[_Subscriber] = set()
        self._ready = asyncio.Event()
        self._max_backlog = max_backlog

    @property
    def revision(self) -> int:
        return self._revision

    async def wait_ready(self) -> None:
        await self._ready.wait()

    async def run(self) -> None:
        """Follow etcd forever; on compaction of our own position, fail every watcher (they re-list)."""
        self._revision = self._origin = await self._store.current_revision()
        self._ready.set()
        while True:
            try:
                async for event in self._store.watch(self._prefix, start_revision=self._revision + 1):
                    self._dispatch(event)
            except Compacted as error:
                log.warning("watch cache lost its position: %s; restarting watchers", error)
                self._fail_all(error)
                self._ring.clear()
                self._revision = self._origin = await self._store.current_revision()
            except Unavailable as error:
                log.warning("watch cache: %s; resuming from revision %d", error, self._revision + 1)
                await asyncio.sleep(0.2)

    def _dispatch(self, event: WatchEvent) -> None:
        if event.type != "PROGRESS":
            if len(self._ring) == self._ring.maxlen:
                self._origin = self._ring[0].rev
            self._ring.append(event)
        self._revision = max(self._revision, event.rev)
        for sub in list(self._subscribers):
            if event.type == "PROGRESS" or event.key.startswith(sub.prefix):
                if sub.queue.qsize() >= self._max_backlog:
                    self._subscribers.discard(sub)
                    sub.queue.put_nowait(Unavailable("watcher fell too far behind"))
                else:
                    sub.queue.put_nowait(event)

    def _fail_all(self, error: StoreError) -> None:
        for sub in self._subscribers:
            sub.queue.put_nowait(error)
        self._subscribers.clear()

    async def events(self, prefix: str, *, start_revision: int) -> AsyncIterator[WatchEvent]:
        """Events under `prefix` with rev >= start_revision, then live ones, until the caller stops."""
        await self._ready.wait()
        if start_revision <= self._origin:
            async for event in self._store.watch(prefix, start_revision=start_revision):
                yield event
            return
        sub = _Subscriber(prefix)
        replay = [e for e in self._ring if e.rev >= start_revision and e.key.startswith(prefix)]
        self._subscribers.add(sub)
        try:
            for event in replay:
                yield event
            while True:
                item = await sub.queue.get()
                if isinstance(item, StoreError):
                    raise item
                yield item
        finally:
            self._subscribers.discard(sub)


class PrefixMirror:
    """An in-memory copy of every value under a prefix, kept current from the watch cache."""

    def __init__(self, store: Store, cache: WatchCache, prefix: str) -> None:
        self._store, self._cache, self._prefix = store, cache, prefix
        self._values: dict[str, dict] = {}
        self._synced = asyncio.Event()
        self._version = 0

    def values(self) -> list[dict]:
        return list(self._values.values())

    def get(self, key: str) -> dict | None:
        return self._values.get(key)

    @property
    def version(self) -> int:
        """Bumped on every change, so readers can tell cheaply whether to recompute what they derive."""
        return self._version

    async def wait_synced(self) -> None:
        await self._synced.wait()

    async def run(self) -> None:
        while True:
            entries, revision, _ = await self._store.list(self._prefix)
            self._values = {e.key: e.value for e in entries}
            self._version += 1
            self._synced.set()
            try:
                async for event in self._cache.events(self._prefix, start_revision=revision + 1):
                    if event.type == "PUT" and event.value is not None:
                        self._values[event.key] = event.value
                    elif event.type == "DELETE":
                        self._values.pop(event.key, None)
                    if event.type != "PROGRESS":
                        self._version += 1
            except StoreError as error:
                log.warning("mirror of %s re-lists after: %s", self._prefix, error)
