"""What each API verb does to stored objects: the semantics clients rely on, over the store.

Objects are stored without `metadata.resourceVersion`; it is the etcd mod_revision and is set on
every object read back. Writes are compare-and-swap against the revision read, so concurrent
writers through any API server get 409 Conflict instead of lost updates. Defaulting and
validation are injected (`Admission`), so the registry holds only storage semantics: identity
and timestamps, generation, status/spec separation, finalizers and graceful deletion, dry runs
and namespace existence.
"""

from __future__ import annotations

import asyncio
import copy
import datetime as dt
import functools
import random
import secrets
import string
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from provisioner.controlplane.apiserver.paging import decode_continue, encode_continue
from provisioner.controlplane.apiserver.resources import ResourceType, by_kind
from provisioner.controlplane.apiserver.selectors import FieldSelector, LabelSelector
from provisioner.controlplane.apiserver.serviceips import Claim, ServiceIPs
from provisioner.controlplane.apiserver.status import ApiError, FieldError, invalid, not_found
from provisioner.controlplane.store import (
    AlreadyExists,
    Compacted,
    Conflict,
    KeyNotFound,
    PrefixMirror,
    Store,
)

__all__ = ["Admission", "ListResult", "Registry", "conflict", "now_rfc3339", "with_rv"]

Obj = dict[str, Any]
NAMESPACES = by_kind("v1", "Namespace")
assert NAMESPACES is not None
_LIST_CHUNK = 500
# Like the etcd3 storage's guaranteed update, a patch without a resourceVersion precondition re-reads and
# re-applies until it lands; the bound only guards against a livelock, with a short random pause between
# rounds so racing writers fall out of step.
_CONFLICT_RETRIES = 50
_CONFLICT_PAUSE_S = 0.005
_GENERATE_ALPHABET = string.ascii_lowercase + string.digits


@dataclass(frozen=True)
class Admission:
    """Defaulting and validation, from the schema modules; both see the whole object."""

    apply_defaults: Callable[[ResourceType, Obj], None]
    validate: Callable[..., list[FieldError]]  # (rt, obj, *, old=None) -> errors


@dataclass(frozen=True)
class ListResult:
    items: list[Obj]
    revision: int
    continue_token: str = ""


@functools.lru_cache(maxsize=4)
def _rfc3339(second: int) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(second))


def now_rfc3339() -> str:
    """The current second, formatted once per second (every create stamps one)."""
    return _rfc3339(int(time.time()))


def with_rv(obj: Obj, rev: int) -> Obj:
    obj.setdefault("metadata", {})["resourceVersion"] = str(rev)
    return obj


def _qualified(rt: ResourceType) -> str:
    return f"{rt.plural}.{rt.group}" if rt.group else rt.plural


def conflict(rt: ResourceType, name: str) -> ApiError:
    return ApiError(409, "Conflict",
                    f'Operation cannot be fulfilled on {_qualified(rt)} "{name}": the object has been modified; '
                    "please apply your changes to the latest version and try again",
                    {"name": name, "group": rt.group, "kind": rt.plural})


def _bad_request(message: str) -> ApiError:
    return ApiError(400, "BadRequest", message)


def _strip_stored(obj: Obj) -> Obj:
    obj.get("metadata", {}).pop("resourceVersion", None)
    return obj


def _spec_part(obj: Obj) -> Obj:
    """Everything a generation counts: all but metadata and status."""
    return {k: v for k, v in obj.items() if k not in ("metadata", "status", "kind", "apiVersion")}


def _finalizers(obj: Obj) -> list[str]:
    meta = list(obj.get("metadata", {}).get("finalizers") or [])
    if obj.get("kind") == "Namespace":
        meta += list(obj.get("spec", {}).get("finalizers") or [])
    return meta


class Registry:
    """Verbs over stored objects; `namespaces` mirrors stored Namespaces so creates skip an etcd read.

    With `service_ips`, Services get a cluster IP claimed before defaulting and freed when the
    Service is deleted (or stops needing it); a failed write undoes its claim.
    """

    def __init__(self, store: Store, *, admission: Admission, namespaces: PrefixMirror | None = None,
                 service_ips: ServiceIPs | None = None) -> None:
        self._store = store
        self._admission = admission
        self._namespaces = namespaces
        self._service_ips = service_ips

    @property
    def store(self) -> Store:
        return self._store

    # --- reads ------------------------------------------------------------------------------------

    async def get(self, rt: ResourceType, name: str, namespace: str | None) -> Obj:
        found = await self._store.get(rt.key(name, namespace))
        if found is None:
            raise not_found(group=rt.group, plural=rt.plural, name=name)
        obj, rev = found
        return with_rv(obj, rev)

    async def _get_with_rev(self, rt: ResourceType, name: str, namespace: str | None) -> tuple[Obj, int]:
        found = await self._store.get(rt.key(name, namespace))
        if found is None:
            raise not_found(group=rt.group, plural=rt.plural, name=name)
        return found

    async def list(
        self,
        rt: ResourceType,
        namespace: str | None,
        *,
        labels: LabelSelector | None = None,
        fields: FieldSelector | None = None,
        limit: int | None = None,
        continue_token: str = "",
    ) -> ListResult:
        """Matching objects in key order at one revision; `limit` pages with an opaque continue token."""
        prefix = rt.key_prefix(namespace)
        revision: int | None = None
        start_after: str | None = None
        if continue_token:
            revision, start_after = decode_continue(continue_token, prefix=prefix)
        filtered = labels is not None or fields is not None
        chunk = _LIST_CHUNK if limit is None else (max(limit, _LIST_CHUNK) if filtered else limit)
        items: list[Obj] = []
        while True:
            try:
                entries, rev, more = await self._store.list(prefix, limit=chunk, start_after=start_after,
                                                            revision=revision)
            except Compacted as error:
                raise ApiError(410, "Expired", "The provided continue parameter is too old to display a consistent "
                                               "list result. You can start a new list without the continue "
                                               "parameter.") from error
            revision = revision or rev
            for i, entry in enumerate(entries):
                obj = with_rv(entry.value, entry.rev)
                if (labels is None or labels.matches(obj.get("metadata", {}).get("labels") or {})) and (
                        fields is None or fields.matches(obj)):
                    items.append(obj)
                if limit is not None and len(items) >= limit:
                    more = more or i < len(entries) - 1
                    token = encode_continue(revision=revision, start_after=entry.key) if more else ""
                    return ListResult(items, revision, token)
            if not more or not entries:
                return ListResult(items, revision)
            start_after = entries[-1].key

    # --- namespace checks -------------------------------------------------------------------------

    async def _namespace_accepts_content(self, namespace: str) -> None:
        key = NAMESPACES.key(namespace)
        ns: Obj | None = None
        if self._namespaces is not None:
            ns = self._namespaces.get(key)
        if ns is None:
            found = await self._store.get(key)
            ns = found[0] if found else None
        if ns is None:
            raise not_found(group="", plural="namespaces", name=namespace)
        if ns.get("metadata", {}).get("deletionTimestamp"):
            raise ApiError(403, "Forbidden",
                           f"unable to create new content in namespace {namespace} because it is being terminated",
                           {"name": namespace, "kind": "namespaces"})

    # --- create -----------------------------------------------------------------------------------

    def _check_body(self, rt: ResourceType, obj: Obj, namespace: str | None) -> Obj:
        if not isinstance(obj, dict):
            raise _bad_request("the request body must be a JSON or YAML object")
        kind, api_version = obj.get("kind"), obj.get("apiVersion")
        if kind not in (None, rt.kind) or api_version not in (None, rt.api_version):
            raise _bad_request(f"the object's kind {api_version}/{kind} does not match the request's resource "
                               f"{rt.api_version}/{rt.kind} ({rt.url_path(namespace=namespace)})")
        obj["kind"], obj["apiVersion"] = rt.kind, rt.api_version
        meta = obj.get("metadata")
        if meta is None:
            meta = obj["metadata"] = {}
        if not isinstance(meta, dict):
            raise invalid(group=rt.group, kind=rt.kind, name="",
                          errors=[FieldError("metadata", "must be an object")])
        if rt.namespaced:
            body_ns = meta.get("namespace")
            if body_ns and namespace and body_ns != namespace:
                raise _bad_request(f"the namespace of the provided object ({body_ns}) does not match the namespace "
                                   f"sent on the request ({namespace})")
            meta["namespace"] = namespace or body_ns or "default"
        else:
            meta.pop("namespace", None)
        return meta

    def _admit(self, rt: ResourceType, obj: Obj, *, old: Obj | None) -> None:
        self._admission.apply_defaults(rt, obj)
        errors = self._admission.validate(rt, obj, old=old)
        if errors:
            raise invalid(group=rt.group, kind=rt.kind, name=obj.get("metadata", {}).get("name", ""), errors=errors)

    async def create(self, rt: ResourceType, obj: Obj, namespace: str | None, *, dry_run: bool = False) -> Obj:
        meta = self._check_body(rt, obj, namespace)
        if not meta.get("name"):
            if meta.get("generateName"):
                meta["name"] = meta["generateName"] + "".join(secrets.choice(_GENERATE_ALPHABET) for _ in range(5))
            else:
                raise invalid(group=rt.group, kind=rt.kind, name="", errors=[
                    FieldError("metadata.name", "name or generateName is required", "FieldValueRequired")])
        for field in ("resourceVersion", "deletionTimestamp", "deletionGracePeriodSeconds", "selfLink"):
            meta.pop(field, None)
        meta["uid"] = str(uuid.uuid4())
        meta["creationTimestamp"] = now_rfc3339()
        meta["generation"] = 1
        self._prepare_for_create(rt, obj)
        claim = await self._assign_cluster_ip(rt, obj, old=None, dry_run=dry_run)
        try:
            self._admit(rt, obj, old=None)
            if rt.namespaced:
                await self._namespace_accepts_content(meta["namespace"])
            if dry_run:
                return obj
            try:
                rev = await self._store.create(rt.key(meta["name"], meta.get("namespace")), obj)
            except AlreadyExists:
                raise ApiError(409, "AlreadyExists", f'{_qualified(rt)} "{meta["name"]}" already exists',
                               {"name": meta["name"], "group": rt.group, "kind": rt.plural}) from None
        except BaseException:
            await self._undo_claim(claim)
            raise
        return with_rv(obj, rev)

    # --- service cluster IPs ----------------------------------------------------------------------

    async def _assign_cluster_ip(self, rt: ResourceType, obj: Obj, *, old: Obj | None, dry_run: bool
                                 ) -> Claim | None:
        if self._service_ips is None or rt.kind != "Service":
            return None
        return await self._service_ips.assign(obj, old=old, dry_run=dry_run)

    async def _undo_claim(self, claim: Claim | None) -> None:
        if claim is not None and self._service_ips is not None:
            await self._service_ips.undo(claim)

    async def _release_cluster_ip(self, rt: ResourceType, gone: Obj, *, kept: Obj | None = None) -> None:
        """Free the cluster IP of a deleted Service, or of one whose update dropped it (to ExternalName)."""
        if self._service_ips is None or rt.kind != "Service":
            return
        ip = (gone.get("spec") or {}).get("clusterIP")
        if kept is None or (kept.get("spec") or {}).get("clusterIP") != ip:
            await self._service_ips.release(gone)

    @staticmethod
    def _prepare_for_create(rt: ResourceType, obj: Obj) -> None:
        """Status a client may not set at create, as Kubernetes' strategies reset it."""
        if rt.kind == "Namespace":
            spec = obj.setdefault("spec", {})
            spec.setdefault("finalizers", ["kubernetes"])
            obj["status"] = {"phase": "Active"}
        elif rt.kind == "Pod":
            obj["status"] = {"phase": "Pending", **{k: v for k, v in (obj.get("status") or {}).items()
                                                    if k in ("qosClass",)}}
        elif rt.kind == "Deployment":
            obj["status"] = {}
        elif rt.kind == "ReplicaSet":
            obj["status"] = {"replicas": 0}  # required by the client's V1ReplicaSetStatus
        elif rt.kind == "Service":
            obj["status"] = {"loadBalancer": {}}

    # --- update -----------------------------------------------------------------------------------

    async def update(self, rt: ResourceType, obj: Obj, *, name: str, namespace: str | None,
                     subresource: str = "", dry_run: bool = False) -> Obj:
        """PUT: replace the object (or its status / finalizers) if `resourceVersion` is current."""
        meta = self._check_body(rt, obj, namespace)
        if meta.get("name") not in (None, name):
            raise _bad_request(f'the name of the object ({meta.get("name")}) does not match the name on the URL '
                               f"({name})")
        meta["name"] = name
        old, rev = await self._get_with_rev(rt, name, namespace)
        wanted_rv = meta.get("resourceVersion")
        if wanted_rv and wanted_rv != str(rev):
            raise conflict(rt, name)
        return await self._write_update(rt, old, rev, obj, subresource=subresource, dry_run=dry_run)

    async def _write_update(self, rt: ResourceType, old: Obj, rev: int, new: Obj, *,
                            subresource: str, dry_run: bool) -> Obj:
        merged = self._merge_for_update(rt, old, new, subresource)
        claim = await self._assign_cluster_ip(rt, merged, old=old, dry_run=dry_run)
        try:
            written = await self._admit_and_write(rt, old, rev, merged, dry_run=dry_run)
        except BaseException:
            await self._undo_claim(claim)
            raise
        if not dry_run:
            deleted = bool(written["metadata"].get("deletionTimestamp")) and not _finalizers(written)
            await self._release_cluster_ip(rt, old, kept=None if deleted else written)
        return written

    async def _admit_and_write(self, rt: ResourceType, old: Obj, rev: int, merged: Obj, *, dry_run: bool) -> Obj:
        self._admit(rt, merged, old=old)
        if merged == old:  # a no-op write keeps its resourceVersion (so `kubectl apply` twice is unchanged)
            return with_rv(old, rev)
        if _spec_part(merged) != _spec_part(old):
            merged["metadata"]["generation"] = int(old["metadata"].get("generation") or 1) + 1
        meta = merged["metadata"]
        key = rt.key(meta["name"], meta.get("namespace"))
        if meta.get("deletionTimestamp") and not _finalizers(merged):
            if dry_run:
                return with_rv(merged, rev)
            try:
                _, del_rev = await self._store.delete(key, expected_rev=rev)
            except (Conflict, KeyNotFound):
                raise conflict(rt, meta["name"]) from None
            return with_rv(merged, del_rev)
        if dry_run:
            return with_rv(merged, rev)
        try:
            new_rev = await self._store.update(key, _strip_stored(merged), expected_rev=rev)
        except Conflict:
            raise conflict(rt, meta["name"]) from None
        except KeyNotFound:
            raise not_found(group=rt.group, plural=rt.plural, name=meta["name"]) from None
        return with_rv(merged, new_rev)

    @staticmethod
    def _merge_for_update(rt: ResourceType, old: Obj, new: Obj, subresource: str) -> Obj:
        """The object to store: status writes change only status, main writes never change status."""
        old = _strip_stored(copy.deepcopy(old))
        new = _strip_stored(copy.deepcopy(new))
        if subresource == "status":
            merged = copy.deepcopy(old)
            if "status" in new:
                merged["status"] = new["status"]
            else:
                merged.pop("status", None)
            return merged
        if subresource == "finalize":
            merged = copy.deepcopy(old)
            merged.setdefault("spec", {})["finalizers"] = (new.get("spec") or {}).get("finalizers") or []
            return merged
        merged = new
        if "status" in rt.subresources:
            if "status" in old:
                merged["status"] = old["status"]
            else:
                merged.pop("status", None)
        meta, old_meta = merged["metadata"], old.get("metadata", {})
        for field in ("uid", "creationTimestamp", "deletionTimestamp", "deletionGracePeriodSeconds", "generation"):
            if field in old_meta:
                meta[field] = old_meta[field]
            else:
                meta.pop(field, None)
        if rt.namespaced:
            meta["namespace"] = old_meta.get("namespace")
        return merged

    async def patch(self, rt: ResourceType, *, name: str, namespace: str | None, subresource: str,
                    apply: Callable[[Obj], Obj], dry_run: bool = False) -> Obj:
        """Apply `apply(current object) -> patched object` and write it, retrying lost races."""
        for _ in range(_CONFLICT_RETRIES):
            old, rev = await self._get_with_rev(rt, name, namespace)
            patched = apply(with_rv(copy.deepcopy(old), rev))
            if not isinstance(patched, dict):
                raise _bad_request("the patch did not produce an object")
            patched_rv = (patched.get("metadata") or {}).get("resourceVersion")
            if patched_rv and patched_rv != str(rev):
                raise conflict(rt, name)
            meta = self._check_body(rt, patched, namespace)
            if meta.get("name", name) != name:
                raise _bad_request(f"the patch changes the object's name to {meta.get('name')}; names are immutable")
            meta["name"] = name
            try:
                return await self._write_update(rt, old, rev, patched, subresource=subresource, dry_run=dry_run)
            except ApiError as error:
                # Lost a race: patch the newer object. A patch that pins resourceVersion carries the old one
                # there, so the next round answers 409 at the check above, as a stale update would.
                if error.code != 409:
                    raise
            await asyncio.sleep(random.uniform(0, _CONFLICT_PAUSE_S))
        raise conflict(rt, name)

    # --- delete -----------------------------------------------------------------------------------

    async def delete(self, rt: ResourceType, *, name: str, namespace: str | None, options: Obj,
                     dry_run: bool = False) -> Obj:
        """Delete now, or mark for deletion when finalizers (or a node running the pod) must act first."""
        old, rev = await self._get_with_rev(rt, name, namespace)
        pre = options.get("preconditions") or {}
        meta = old.setdefault("metadata", {})
        if pre.get("uid") and pre["uid"] != meta.get("uid"):
            raise ApiError(409, "Conflict", f"Precondition failed: UID in precondition: {pre['uid']}, "
                                            f"UID in object meta: {meta.get('uid')}")
        if pre.get("resourceVersion") and pre["resourceVersion"] != str(rev):
            raise conflict(rt, name)
        marked = self._mark_for_deletion(rt, old, options)
        key = rt.key(name, namespace)
        if marked is not None:
            if dry_run or marked == old:
                return with_rv(marked, rev)
            try:
                new_rev = await self._store.update(key, _strip_stored(marked), expected_rev=rev)
            except (Conflict, KeyNotFound):
                raise conflict(rt, name) from None
            return with_rv(marked, new_rev)
        if dry_run:
            return with_rv(old, rev)
        try:
            last, del_rev = await self._store.delete(key, expected_rev=rev)
        except KeyNotFound:
            raise not_found(group=rt.group, plural=rt.plural, name=name) from None
        except Conflict:
            raise conflict(rt, name) from None
        await self._release_cluster_ip(rt, last)
        return with_rv(last, del_rev)

    @staticmethod
    def _mark_for_deletion(rt: ResourceType, obj: Obj, options: Obj) -> Obj | None:
        """The object marked with deletionTimestamp when deletion must wait; None to delete it now."""
        marked = copy.deepcopy(obj)
        meta = marked["metadata"]
        policy = options.get("propagationPolicy")
        if options.get("orphanDependents") is True:
            policy = "Orphan"
        extra = {"Foreground": "foregroundDeletion", "Orphan": "orphan"}.get(policy or "")
        if extra and not meta.get("deletionTimestamp") and extra not in (meta.get("finalizers") or []):
            meta["finalizers"] = [*(meta.get("finalizers") or []), extra]
        grace = options.get("gracePeriodSeconds")
        if rt.kind == "Pod" and (marked.get("spec") or {}).get("nodeName") and grace != 0 and (
                (marked.get("status") or {}).get("phase") not in ("Succeeded", "Failed")):
            if grace is None:
                grace = (marked.get("spec") or {}).get("terminationGracePeriodSeconds", 30)
            if meta.get("deletionTimestamp") is None or grace < meta.get("deletionGracePeriodSeconds", grace + 1):
                stamp = dt.datetime.now(dt.UTC) + dt.timedelta(seconds=int(grace))
                meta["deletionTimestamp"] = stamp.strftime("%Y-%m-%dT%H:%M:%SZ")
                meta["deletionGracePeriodSeconds"] = int(grace)
            return marked
        if rt.kind == "Namespace":
            marked.setdefault("status", {})["phase"] = "Terminating"
        if not _finalizers(marked):
            return None
        if not meta.get("deletionTimestamp"):
            meta["deletionTimestamp"] = now_rfc3339()
            meta["deletionGracePeriodSeconds"] = 0
        return marked
