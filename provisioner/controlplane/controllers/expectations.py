"""Expectations: the creations and deletions a loop has written but its cache has not seen yet.

The cache lags behind our own writes; without this a second reconcile right after creating pods would
count too few and create more. A loop records the keys it created or deleted and skips its
count-based decisions for that owner until the informer has observed them (or they time out).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

__all__ = ["Expectations"]

_TTL = 300.0


@dataclass
class _Pending:
    adds: set[str] = field(default_factory=set)
    deletes: set[str] = field(default_factory=set)
    since: float = 0.0


class Expectations:
    """Per owner key, the dependent keys still to be observed as added or deleted."""

    def __init__(self, *, clock: Callable[[], float] = time.monotonic, ttl: float = _TTL) -> None:
        self._clock = clock
        self._ttl = ttl
        self._pending: dict[str, _Pending] = {}
        self._owner_of: dict[str, str] = {}

    def expect_adds(self, owner: str, keys: Iterable[str]) -> None:
        self._expect(owner, keys, deletes=False)

    def expect_deletes(self, owner: str, keys: Iterable[str]) -> None:
        self._expect(owner, keys, deletes=True)

    def _expect(self, owner: str, keys: Iterable[str], *, deletes: bool) -> None:
        pending = self._pending.setdefault(owner, _Pending())
        pending.since = self._clock()
        bucket = pending.deletes if deletes else pending.adds
        for key in keys:
            bucket.add(key)
            self._owner_of[key] = owner

    def observed_add(self, key: str) -> None:
        self._observe(key, deletes=False)

    def observed_delete(self, key: str) -> None:
        self._observe(key, deletes=True)

    def _observe(self, key: str, *, deletes: bool) -> None:
        owner = self._owner_of.get(key)
        pending = self._pending.get(owner) if owner is not None else None
        if pending is None:
            return
        (pending.deletes if deletes else pending.adds).discard(key)
        if key not in pending.adds and key not in pending.deletes:
            self._owner_of.pop(key, None)

    def satisfied(self, owner: str) -> bool:
        """True when nothing is pending for `owner` or what is pending is older than the TTL."""
        pending = self._pending.get(owner)
        if pending is None or (not pending.adds and not pending.deletes):
            return True
        if self._clock() - pending.since > self._ttl:
            self.forget(owner)
            return True
        return False

    def forget(self, owner: str) -> None:
        pending = self._pending.pop(owner, None)
        if pending is not None:
            for key in pending.adds | pending.deletes:
                self._owner_of.pop(key, None)
