"""A work queue of keys: duplicates collapse, no key is held by two workers, failures back off per key.

Concurrency model (one event loop): `add` is synchronous so informer handlers can call it; a key added
while a worker holds it is parked in the dirty set and re-queued by `done`. Workers loop
`key = await get()` -> reconcile -> `done(key)`, and `get` returns None once the queue shuts down.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Hashable
from typing import Generic, TypeVar

__all__ = ["ExponentialBackoff", "WorkQueue"]

K = TypeVar("K", bound=Hashable)


class ExponentialBackoff(Generic[K]):
    """Per-key delay doubling from `base` up to `cap`; `forget` resets a key after a success."""

    def __init__(self, *, base: float = 0.005, cap: float = 300.0) -> None:
        self.base = base
        self.cap = cap
        self._failures: dict[K, int] = {}

    def when(self, key: K) -> float:
        """The delay before the next retry of `key`, counting this failure."""
        failures = self._failures.get(key, 0)
        self._failures[key] = failures + 1
        return min(self.base * 2**failures, self.cap)

    def forget(self, key: K) -> None:
        self._failures.pop(key, None)

    def num_requeues(self, key: K) -> int:
        return self._failures.get(key, 0)


class WorkQueue(Generic[K]):
    """Keys waiting for a worker, in FIFO order, each at most once."""

    def __init__(self, *, backoff: ExponentialBackoff[K] | None = None) -> None:
        self.backoff: ExponentialBackoff[K] = backoff or ExponentialBackoff()
        self._queue: deque[K] = deque()
        self._dirty: set[K] = set()
        self._processing: set[K] = set()
        self._waiters: list[asyncio.Future[None]] = []
        self._timers: set[asyncio.TimerHandle] = set()
        self._shutting_down = False

    def __len__(self) -> int:
        return len(self._queue)

    @property
    def shutting_down(self) -> bool:
        return self._shutting_down

    def add(self, key: K) -> None:
        if self._shutting_down or key in self._dirty:
            return
        self._dirty.add(key)
        if key not in self._processing:
            self._queue.append(key)
            self._wake()

    def add_after(self, key: K, delay: float) -> None:
        if self._shutting_down:
            return
        if delay <= 0:
            self.add(key)
            return
        handle: asyncio.TimerHandle

        def fire() -> None:
            self._timers.discard(handle)
            self.add(key)

        handle = asyncio.get_running_loop().call_later(delay, fire)
        self._timers.add(handle)

    def add_rate_limited(self, key: K) -> None:
        """Retry `key` after its backoff delay (a failure)."""
        self.add_after(key, self.backoff.when(key))

    def forget(self, key: K) -> None:
        """Reset `key`'s backoff (a success)."""
        self.backoff.forget(key)

    def num_requeues(self, key: K) -> int:
        return self.backoff.num_requeues(key)

    async def get(self) -> K | None:
        """The next key, now held by the caller until `done`; None after shutdown."""
        while not self._queue:
            if self._shutting_down:
                return None
            waiter = asyncio.get_running_loop().create_future()
            self._waiters.append(waiter)
            try:
                await waiter
            finally:
                if waiter in self._waiters:
                    self._waiters.remove(waiter)
        key = self._queue.popleft()
        self._processing.add(key)
        self._dirty.discard(key)
        return key

    def done(self, key: K) -> None:
        """The worker finished `key`; if it was added meanwhile it goes back in line."""
        self._processing.discard(key)
        if key in self._dirty and not self._shutting_down:
            self._queue.append(key)
            self._wake()

    def shutdown(self) -> None:
        """Stop accepting keys, cancel pending retries and release waiting workers."""
        self._shutting_down = True
        for handle in self._timers:
            handle.cancel()
        self._timers.clear()
        self._queue.clear()
        self._wake()

    def _wake(self) -> None:
        for waiter in self._waiters:
            if not waiter.done():
                waiter.set_result(None)
        self._waiters.clear()
