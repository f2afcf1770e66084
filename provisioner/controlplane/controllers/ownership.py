"""ownerReferences: who controls an object, and claiming (adopting or releasing) objects by selector.

A controller acts only on objects it controls (controllerRef uid = its uid). Orphans that match its
selector are adopted; objects it controls that no longer match are released. Adoption and release are
merge patches of the whole ownerReferences list guarded by the object's resourceVersion, so a race
with another claimant fails with 409 and is retried.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from provisioner.controlplane.apiserver.resources import ResourceType
from provisioner.controlplane.apiserver.selectors import LabelSelector
from provisioner.controlplane.client import ApiClient

__all__ = [
    "claim",
    "controller_ref",
    "controller_uid_index",
    "owner_reference",
    "owner_uids",
    "patch_metadata",
]

Obj = dict[str, Any]


def controller_ref(obj: Mapping[str, Any]) -> Mapping[str, Any] | None:
    for ref in obj["metadata"].get("ownerReferences") or ():
        if ref.get("controller"):
            return dict(ref)
    return None


def owner_reference(owner: Mapping[str, Any], *, controller: bool = True) -> Obj:
    """A controlling reference to `owner` that blocks its foreground deletion."""
    meta = owner["metadata"]
    return {
        "apiVersion": owner["apiVersion"],
        "kind": owner["kind"],
        "name": meta["name"],
        "uid": meta["uid"],
        "controller": controller,
        "blockOwnerDeletion": True,
    }


def owner_uids(obj: Mapping[str, Any]) -> Iterable[str]:
    """Informer index: every owner uid of an object."""
    return [ref["uid"] for ref in obj["metadata"].get("ownerReferences") or () if ref.get("uid")]


def controller_uid_index(obj: Mapping[str, Any]) -> Iterable[str]:
    """Informer index: the controlling owner's uid."""
    ref = controller_ref(obj)
    return [ref["uid"]] if ref and ref.get("uid") else []


async def claim(
    client: ApiClient,
    rt: ResourceType,
    *,
    owner: Mapping[str, Any],
    selector: LabelSelector,
    candidates: Iterable[Mapping[str, Any]],
) -> list[Mapping[str, Any]]:
    """The candidates `owner` controls after adopting matching orphans and releasing non-matching ones."""
    uid = owner["metadata"]["uid"]
    owner_deleting = bool(owner["metadata"].get("deletionTimestamp"))
    owned: list[Mapping[str, Any]] = []
    for obj in candidates:
        meta = obj["metadata"]
        ref = controller_ref(obj)
        matches = selector.matches(meta.get("labels") or {})
        if ref is not None and ref.get("uid") == uid:
            if matches or owner_deleting:
                owned.append(obj)
            else:
                refs = [r for r in meta.get("ownerReferences") or () if r.get("uid") != uid]
                await patch_metadata(client, rt, obj, ownerReferences=refs)
        elif ref is None and matches and not owner_deleting and not meta.get("deletionTimestamp"):
            refs = [*(meta.get("ownerReferences") or ()), owner_reference(owner)]
            owned.append(await patch_metadata(client, rt, obj, ownerReferences=refs))
    return owned


async def patch_metadata(client: ApiClient, rt: ResourceType, obj: Mapping[str, Any], **fields: list[Any]) -> Obj:
    """Merge-patch list fields of `obj`'s metadata (an empty list removes the field), guarded by its
    resourceVersion so a concurrent change fails with 409 instead of being overwritten."""
    meta = obj["metadata"]
    changes: dict[str, Any] = {name: value or None for name, value in fields.items()}
    patch = {"metadata": {**changes, "resourceVersion": meta["resourceVersion"]}}
    return await client.patch(rt, meta["name"], patch, namespace=meta.get("namespace"))
