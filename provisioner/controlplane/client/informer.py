"""Shared informers: one list+watch per resource type feeding an indexed, read-only local cache.

Contract (as client-go's): the cache is eventually consistent; changes to one object arrive in order;
there is no ordering across objects. The informer lists, marks itself synced, then watches from the
list's resourceVersion; a watch that ends normally resumes from the last seen resourceVersion, a 410
Expired (or any error) re-lists, and the difference between the old cache and the new list is
delivered to handlers as adds, updates and deletes. Handlers run synchronously on the event loop and
should only enqueue keys. Cached objects are shared: never mutate them (`check_mutations` verifies it).
"""

from __future__ import annotations

import asyncio
import json
import logging
import random
from collections.abc import Callable, Iterable
from typing import Any

import aiohttp

from provisioner.controlplane.apiserver.resources import ResourceType
from provisioner.controlplane.client.api import ApiClient, ApiStatusError, WatchExpired, object_key

__all__ = ["CacheMutationError", "IndexFunc", "InformerFactory", "SharedInformer"]

log = logging.getLogger(__name__)

Obj = dict[str, Any]
IndexFunc = Callable[[Obj], Iterable[str]]
AddHandler = Callable[[Obj], None]
UpdateHandler = Callable[[Obj, Obj], None]
DeleteHandler = Callable[[Obj], None]

_RETRY_MIN, _RETRY_MAX = 0.5, 30.0
_WATCH_MIN_SECONDS = 300


class CacheMutationError(RuntimeError):
    """Someone changed a cached object in place; the cache is shared, so that is a bug."""


def _namespace_index(obj: Obj) -> Iterable[str]:
    return (obj["metadata"].get("namespace", ""),)


class SharedInformer:
    """The cache of one resource type (optionally one namespace / field selector) and its handlers."""

    def __init__(
        self,
        client: ApiClient,
        rt: ResourceType,
        *,
        namespace: str | None = None,
        field_selector: str | None = None,
        check_mutations: bool = False,
    ) -> None:
        self.client = client
        self.rt = rt
        self.namespace = namespace
        self.field_selector = field_selector
        self.check_mutations = check_mutations
        self.has_synced = asyncio.Event()
        self.resource_version = ""
        self._items: dict[str, Obj] = {}
        self._snapshots: dict[str, str] = {}
        self._indexers: dict[str, IndexFunc] = {"namespace": _namespace_index}
        self._indices: dict[str, dict[str, set[str]]] = {"namespace": {}}
        self._handlers: list[tuple[AddHandler | None, UpdateHandler | None, DeleteHandler | None]] = []

    # -- reading -------------------------------------------------------------------------------
    def get(self, key: str) -> Obj | None:
        return self._items.get(key)

    def list(self) -> list[Obj]:
        return list(self._items.values())

    def by_index(self, name: str, value: str) -> list[Obj]:
        return [self._items[k] for k in self._indices[name].get(value, ())]

    # -- wiring --------------------------------------------------------------------------------
    def add_indexer(self, name: str, func: IndexFunc) -> None:
        """Register an index (idempotent per name, so several loops can ask for the same one)."""
        if name in self._indexers:
            return
        self._indexers[name] = func
        self._indices[name] = {}
        for key, obj in self._items.items():
            self._index_one(name, key, obj)

    def add_handler(
        self,
        *,
        on_add: AddHandler | None = None,
        on_update: UpdateHandler | None = None,
        on_delete: DeleteHandler | None = None,
    ) -> None:
        """Subscribe; objects already cached are replayed as adds."""
        self._handlers.append((on_add, on_update, on_delete))
        if on_add is not None:
            for obj in self._items.values():
                self._call(on_add, obj)

    # -- the loop ------------------------------------------------------------------------------
    async def run(self) -> None:
        """List, then watch forever; re-list on 410 and after errors (with backoff)."""
        delay = _RETRY_MIN
        while True:
            try:
                items, rv = await self.client.list(
                    self.rt, namespace=self.namespace, field_selector=self.field_selector
                )
                self._replace(items, rv)
                self.has_synced.set()
                delay = _RETRY_MIN
                while True:
                    await self._watch_once()
            except WatchExpired:
                log.info("%s: watch expired at resourceVersion %s, re-listing", self.rt.plural, self.resource_version)
            except (aiohttp.ClientError, ApiStatusError, OSError, TimeoutError, ValueError) as exc:
                log.warning("%s: list/watch failed (%s), retrying in %.1fs", self.rt.plural, exc, delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, _RETRY_MAX)

    async def _watch_once(self) -> None:
        events = self.client.watch(
            self.rt,
            namespace=self.namespace,
            resource_version=self.resource_version,
            field_selector=self.field_selector,
            timeout_seconds=_WATCH_MIN_SECONDS + random.randrange(_WATCH_MIN_SECONDS),
        )
        async for type_, obj in events:
            rv = obj.get("metadata", {}).get("resourceVersion")
            if type_ in ("ADDED", "MODIFIED"):
                self._upsert(obj)
            elif type_ == "DELETED":
                self._remove(object_key(obj), obj)
            if rv:
                self.resource_version = rv

    # -- cache maintenance ---------------------------------------------------------------------
    def _replace(self, items: list[Obj], rv: str) -> None:
        fresh = {object_key(obj): obj for obj in items}
        for key in [k for k in self._items if k not in fresh]:
            self._remove(key, self._items[key])
        for obj in fresh.values():
            self._upsert(obj)
        self.resource_version = rv

    def _upsert(self, obj: Obj) -> None:
        key = object_key(obj)
        old = self._items.get(key)
        if old is not None:
            self._verify(key, old)
            if old["metadata"].get("resourceVersion") == obj["metadata"].get("resourceVersion"):
                return
            self._unindex(key, old)
        self._items[key] = obj
        if self.check_mutations:
            self._snapshots[key] = json.dumps(obj, sort_keys=True)
        for name in self._indexers:
            self._index_one(name, key, obj)
        for on_add, on_update, _ in self._handlers:
            if old is None and on_add is not None:
                self._call(on_add, obj)
            elif old is not None and on_update is not None:
                self._call(on_update, old, obj)

    def _remove(self, key: str, last: Obj) -> None:
        old = self._items.pop(key, None)
        if old is None:
            return
        self._verify(key, old)
        self._snapshots.pop(key, None)
        self._unindex(key, old)
        for _, _, on_delete in self._handlers:
            if on_delete is not None:
                self._call(on_delete, last)

    def _verify(self, key: str, cached: Obj) -> None:
        if self.check_mutations and self._snapshots.get(key) != json.dumps(cached, sort_keys=True):
            raise CacheMutationError(f"cached {self.rt.plural} {key} was mutated in place")

    def verify_all(self) -> None:
        """Check every cached object against its snapshot (tests call this; needs check_mutations)."""
        for key, obj in self._items.items():
            self._verify(key, obj)

    def _index_one(self, name: str, key: str, obj: Obj) -> None:
        for value in self._indexers[name](obj):
            self._indices[name].setdefault(value, set()).add(key)

    def _unindex(self, key: str, obj: Obj) -> None:
        for name, func in self._indexers.items():
            for value in func(obj):
                bucket = self._indices[name].get(value)
                if bucket is not None:
                    bucket.discard(key)
                    if not bucket:
                        del self._indices[name][value]

    def _call(self, handler: Callable[..., None], *args: Obj) -> None:
        try:
            handler(*args)
        except Exception:
            log.exception("%s: event handler %r failed", self.rt.plural, handler)


class InformerFactory:
    """One informer per resource type per process; `run` drives them all, `wait_for_sync` gates workers."""

    def __init__(self, client: ApiClient, *, check_mutations: bool = False) -> None:
        self.client = client
        self.check_mutations = check_mutations
        self._informers: dict[str, SharedInformer] = {}

    def informer(self, rt: ResourceType) -> SharedInformer:
        key = f"{rt.group}/{rt.plural}"
        if key not in self._informers:
            self._informers[key] = SharedInformer(self.client, rt, check_mutations=self.check_mutations)
        return self._informers[key]

    def informers(self) -> list[SharedInformer]:
        return list(self._informers.values())

    async def run(self) -> None:
        """Run every informer created so far until cancelled."""
        async with asyncio.TaskGroup() as group:
            for informer in self._informers.values():
                group.create_task(informer.run(), name=f"informer:{informer.rt.plural}")

    async def wait_for_sync(self) -> None:
        await asyncio.gather(*(informer.has_synced.wait() for informer in self._informers.values()))
