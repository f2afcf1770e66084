"""Garbage collector: deletes objects whose owners are all gone, and runs foreground and orphan deletion.

It watches every kind in the resource table (Events excepted) with an `owner-uid` index, so the
dependents of any object are one lookup. Keys are `<plural>|<namespace/name>`.
- Background: a dependent all of whose owners are absent is deleted. An owner missing from the cache
  is confirmed absent with a live GET (the cache may simply lag), never assumed.
- Foreground: an owner being deleted with the `foregroundDeletion` finalizer gets its dependents
  deleted (foreground too, so it recurses); when no dependent that blocks owner deletion is left, the
  finalizer is removed and the API server completes the deletion.
- Orphan: an owner being deleted with the `orphan` finalizer has its ownerReference removed from every
  dependent, then the finalizer is removed.
Dangling references next to a live owner are removed from the dependent.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from typing import Any

from provisioner.controlplane.apiserver.resources import RESOURCES, ResourceType, by_kind
from provisioner.controlplane.client import ApiStatusError, SharedInformer, object_key, resource
from provisioner.controlplane.controllers.base import Controller, ControllerContext
from provisioner.controlplane.controllers.ownership import owner_uids, patch_metadata

__all__ = ["FOREGROUND", "ORPHAN", "GarbageCollector"]

log = logging.getLogger(__name__)

FOREGROUND = "foregroundDeletion"
ORPHAN = "orphan"

Obj = dict[str, Any]


def _uid_index(obj: Mapping[str, Any]) -> list[str]:
    return [obj["metadata"]["uid"]] if obj["metadata"].get("uid") else []


class GarbageCollector(Controller):
    name = "garbagecollector"

    def __init__(self, ctx: ControllerContext) -> None:
        super().__init__(ctx)
        self.watched: dict[str, SharedInformer] = {}
        for rt in RESOURCES:
            if rt.kind == "Event":
                continue
            informer = self.informer(rt)
            informer.add_indexer("uid", _uid_index)
            informer.add_indexer("owner-uid", owner_uids)
            informer.add_handler(on_add=self._changed(rt), on_update=self._updated(rt), on_delete=self._deleted(rt))
            self.watched[rt.plural] = informer

    # -- routing -------------------------------------------------------------------------------
    def _changed(self, rt: ResourceType) -> Callable[[Obj], None]:
        def handler(obj: Obj) -> None:
            meta = obj["metadata"]
            if meta.get("ownerReferences") or {FOREGROUND, ORPHAN} & set(meta.get("finalizers") or ()):
                self.queue.add(f"{rt.plural}|{object_key(obj)}")

        return handler

    def _updated(self, rt: ResourceType) -> Callable[[Obj, Obj], None]:
        changed = self._changed(rt)

        def handler(old: Obj, new: Obj) -> None:
            changed(new)
            if new["metadata"].get("deletionTimestamp"):
                self._enqueue_owners(new)  # an owner waiting in foreground may be unblocked soon

        return handler

    def _deleted(self, rt: ResourceType) -> Callable[[Obj], None]:
        def handler(obj: Obj) -> None:
            self._enqueue_owners(obj)
            for dependent_rt, dependent in self._dependents(obj["metadata"]["uid"]):
                self.queue.add(f"{dependent_rt.plural}|{object_key(dependent)}")

        return handler

    def _enqueue_owners(self, obj: Mapping[str, Any]) -> None:
        for ref in obj["metadata"].get("ownerReferences") or ():
            owner_rt = by_kind(ref.get("apiVersion", ""), ref.get("kind", ""))
            if owner_rt is not None and owner_rt.plural in self.watched:
                for owner in self.watched[owner_rt.plural].by_index("uid", ref.get("uid", "")):
                    self.queue.add(f"{owner_rt.plural}|{object_key(owner)}")

    def _dependents(self, uid: str) -> list[tuple[ResourceType, Obj]]:
        return [(informer.rt, obj) for informer in self.watched.values() for obj in informer.by_index("owner-uid", uid)]

    # -- reconcile -----------------------------------------------------------------------------
    async def reconcile(self, key: str) -> None:
        plural, _, obj_key = key.partition("|")
        rt = resource(plural)
        obj = self.watched[plural].get(obj_key)
        if obj is None:
            return
        meta = obj["metadata"]
        finalizers = meta.get("finalizers") or []
        if meta.get("deletionTimestamp"):
            if ORPHAN in finalizers:
                await self._orphan_dependents(obj)
                await self._remove_finalizer(rt, obj, ORPHAN)
            elif FOREGROUND in finalizers and await self._dependents_gone(obj):
                await self._remove_finalizer(rt, obj, FOREGROUND)
            return
        if meta.get("ownerReferences"):
            await self._collect(rt, obj)

    async def _collect(self, rt: ResourceType, obj: Obj) -> None:
        """Delete `obj` if none of its owners is alive; drop references to owners that are gone."""
        absent, waiting, solid = [], [], []
        for ref in obj["metadata"]["ownerReferences"]:
            state = await self._owner_state(ref, obj["metadata"].get("namespace"))
            {"absent": absent, "waiting": waiting, "solid": solid}[state].append(ref)
        meta = obj["metadata"]
        if not solid and (absent or waiting):
            policy = "Foreground" if waiting else "Background"
            log.info("deleting %s %s: owners gone (%s)", rt.plural, object_key(obj), policy)
            await self.delete_same(rt, obj, propagation_policy=policy)
        elif absent:
            await patch_metadata(
                self.client, rt, obj, ownerReferences=[r for r in meta["ownerReferences"] if r not in absent]
            )

    async def _owner_state(self, ref: Mapping[str, Any], namespace: str | None) -> str:
        """ "solid" (alive), "waiting" (deleting in foreground, waits for its dependents) or "absent"."""
        owner_rt = by_kind(ref.get("apiVersion", ""), ref.get("kind", ""))
        if owner_rt is None or owner_rt.plural not in self.watched:
            return "solid"  # a kind we do not serve: never collect on a guess
        cached = self.watched[owner_rt.plural].by_index("uid", ref.get("uid", ""))
        owner = cached[0] if cached else None
        if owner is None:
            try:
                owner = await self.client.get(
                    owner_rt, ref["name"], namespace=namespace if owner_rt.namespaced else None
                )
            except ApiStatusError as exc:
                if exc.not_found:
                    return "absent"
                raise
            if owner["metadata"].get("uid") != ref.get("uid"):
                return "absent"
        meta = owner["metadata"]
        if meta.get("deletionTimestamp") and FOREGROUND in (meta.get("finalizers") or ()):
            return "waiting"
        return "solid"

    async def _dependents_gone(self, owner: Obj) -> bool:
        """Delete the dependents of an owner in foreground deletion; True when none blocks it any more."""
        uid = owner["metadata"]["uid"]
        blocking = 0
        for rt, dependent in self._dependents(uid):
            refs = [r for r in dependent["metadata"].get("ownerReferences") or () if r.get("uid") == uid]
            if any(r.get("blockOwnerDeletion") for r in refs):
                blocking += 1
            if not dependent["metadata"].get("deletionTimestamp"):
                await self.delete_same(rt, dependent, propagation_policy="Foreground")
        return blocking == 0

    async def _orphan_dependents(self, owner: Obj) -> None:
        uid = owner["metadata"]["uid"]
        for rt, dependent in self._dependents(uid):
            refs = [r for r in dependent["metadata"].get("ownerReferences") or () if r.get("uid") != uid]
            await patch_metadata(self.client, rt, dependent, ownerReferences=refs)

    async def _remove_finalizer(self, rt: ResourceType, obj: Obj, finalizer: str) -> None:
        finalizers = [f for f in obj["metadata"].get("finalizers") or () if f != finalizer]
        await patch_metadata(self.client, rt, obj, finalizers=finalizers)

