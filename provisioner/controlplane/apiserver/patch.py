"""PATCH bodies and server-side apply: how a stored object and a client's change become the new object.

Pure functions on plain dicts; the original is never mutated. Three patch types, chosen by the
request's Content-Type:

- `application/merge-patch+json`: RFC 7386 (maps merge, `null` deletes, everything else replaces).
- `application/json-patch+json`: RFC 6902 through the `jsonpatch` library, one operation at a time so
  that an error names the failing operation.
- `application/strategic-merge-patch+json`: what kubectl sends for apply, edit, label, annotate,
  `set image` and `rollout restart`. It follows k8s.io/apimachinery/pkg/util/strategicpatch as the
  server runs it (`MergeParallelList` and `IgnoreUnmatchedNulls` on): maps merge recursively, `null`
  deletes, lists with a merge strategy (`patch_strategy`) merge element by element, all other lists
  replace, and the directives `$patch` (replace / delete / merge), `$setElementOrder/<list>`,
  `$deleteFromPrimitiveList/<list>` and `$retainKeys` are honoured.

Errors follow the real API server: an undecodable body is 400 BadRequest, a patch that cannot be
applied (bad directive, missing merge key, failed JSON-patch test) is 422 Invalid.
"""

from __future__ import annotations

import copy
import functools
import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import jsonpatch
import jsonpointer
import kubernetes.client.models

from provisioner.controlplane.apiserver.resources import by_kind
from provisioner.controlplane.apiserver.status import ApiError

__all__ = [
    "APPLY_PATCH",
    "JSON_PATCH",
    "MERGE_PATCH",
    "PATCH_CONTENT_TYPES",
    "STRATEGIC_MERGE_PATCH",
    "apply_patch",
    "patch_strategy",
    "server_side_apply",
]

JSON_PATCH = "application/json-patch+json"
MERGE_PATCH = "application/merge-patch+json"
STRATEGIC_MERGE_PATCH = "application/strategic-merge-patch+json"
APPLY_PATCH = "application/apply-patch+yaml"  # server-side apply: the caller parses YAML, see `server_side_apply`
PATCH_CONTENT_TYPES = (JSON_PATCH, MERGE_PATCH, STRATEGIC_MERGE_PATCH, APPLY_PATCH)

# Fields with a patch strategy, keyed by (official client model, JSON field name): the value is
# (x-kubernetes-patch-strategy, x-kubernetes-patch-merge-key); the merge key is "" for lists of primitives
# merged as sets and for retainKeys-only maps. Source: the `patchStrategy` / `patchMergeKey` struct tags
# in k8s.io/api core/v1, apps/v1 and apimachinery meta/v1 types.go, which Kubernetes also publishes in
# its OpenAPI and kubectl's client-side apply reads from there. Lists not named here are atomic and
# replace wholesale: tolerations, node taints, envFrom, command, args, RBAC rules and subjects, endpoint
# subsets, matchExpressions, status.containerStatuses, ...
_MERGE = "merge"
_CONTAINER_LISTS = {"ports": "containerPort", "env": "name", "volumeMounts": "mountPath", "volumeDevices": "devicePath"}
_PATCH_STRATEGIES: dict[tuple[str, str], tuple[str, str]] = {
    ("V1ObjectMeta", "finalizers"): (_MERGE, ""),
    ("V1ObjectMeta", "ownerReferences"): (_MERGE, "uid"),
    ("V1PodSpec", "containers"): (_MERGE, "name"),
    ("V1PodSpec", "initContainers"): (_MERGE, "name"),
    ("V1PodSpec", "ephemeralContainers"): (_MERGE, "name"),
    ("V1PodSpec", "volumes"): ("merge,retainKeys", "name"),
    ("V1PodSpec", "imagePullSecrets"): (_MERGE, "name"),
    ("V1PodSpec", "hostAliases"): (_MERGE, "ip"),
    ("V1PodSpec", "topologySpreadConstraints"): (_MERGE, "topologyKey"),
    ("V1PodSpec", "resourceClaims"): ("merge,retainKeys", "name"),
    ("V1PodSpec", "schedulingGates"): (_MERGE, "name"),
    **{("V1Container", field): (_MERGE, key) for field, key in _CONTAINER_LISTS.items()},
    **{("V1EphemeralContainer", field): (_MERGE, key) for field, key in _CONTAINER_LISTS.items()},
    ("V1PodStatus", "conditions"): (_MERGE, "type"),
    ("V1PodStatus", "podIPs"): (_MERGE, "ip"),
    ("V1PodStatus", "hostIPs"): (_MERGE, "ip"),
    ("V1ServiceSpec", "ports"): (_MERGE, "port"),
    ("V1ServiceStatus", "conditions"): (_MERGE, "type"),
    ("V1NodeSpec", "podCIDRs"): (_MERGE, ""),
    ("V1NodeStatus", "conditions"): (_MERGE, "type"),
    ("V1NodeStatus", "addresses"): (_MERGE, "type"),
    ("V1NamespaceStatus", "conditions"): (_MERGE, "type"),
    ("V1ServiceAccount", "secrets"): (_MERGE, "name"),
    ("V1DeploymentSpec", "strategy"): ("retainKeys", ""),
    ("V1DeploymentStatus", "conditions"): (_MERGE, "type"),
    ("V1ReplicaSetStatus", "conditions"): (_MERGE, "type"),
}


def patch_strategy(model: str, field: str) -> tuple[str, str] | None:
    """(x-kubernetes-patch-strategy, x-kubernetes-patch-merge-key) of a field of a client model, or None.

    The OpenAPI document must publish these: kubectl computes `apply` patches from it, and a merging
    list it believes atomic would be sent whole and then merged here, so removed elements would stay."""
    return _PATCH_STRATEGIES.get((model, field))


_DIRECTIVE = "$patch"
_RETAIN_KEYS = "$retainKeys"
_SET_ORDER = "$setElementOrder/"
_DELETE_PRIMITIVES = "$deleteFromPrimitiveList/"
_MISSING = object()


def _bad_request(message: str) -> ApiError:
    return ApiError(400, "BadRequest", message)


def _unprocessable(message: str) -> ApiError:
    return ApiError(422, "Invalid", message)


# --- where we are in the object: the official client's models as the schema ---------------------------

_LIST_TYPE_RE = re.compile(r"(?:list|List)\[(.+)\]")


@functools.cache
def _field_types(model: str) -> dict[str, str]:
    """JSON field name -> openapi type string (`V1PodSpec`, `List[V1Container]`, `Dict[str, str]`)."""
    cls = getattr(kubernetes.client.models, model, None)
    if not hasattr(cls, "openapi_types"):
        return {}
    return {cls.attribute_map[attr]: kind for attr, kind in cls.openapi_types.items()}


@dataclass(frozen=True)
class _Schema:
    """A position in an object: the client model describing it, or None inside free-form or unknown data."""

    model: str | None

    def _type(self, field: str) -> str | None:
        return _field_types(self.model).get(field) if self.model else None

    def field(self, field: str) -> _Schema:
        """The schema of a map-valued field (a nested struct; free-form for `Dict[...]` such as labels)."""
        kind = self._type(field)
        return _Schema(kind if kind and _field_types(kind) else None)

    def element(self, field: str) -> _Schema:
        """The schema of the elements of a list-valued field."""
        match = _LIST_TYPE_RE.fullmatch(self._type(field) or "")
        inner = match.group(1) if match else None
        return _Schema(inner if inner and _field_types(inner) else None)

    def merge_key(self, field: str) -> str | None:
        """Merge key of a merging list ("" for primitives), None for a list that replaces."""
        strategy = patch_strategy(self.model, field) if self.model else None
        return strategy[1] if strategy and _MERGE in strategy[0].split(",") else None


def _schema_for(obj: dict[str, Any]) -> _Schema:
    """Top-level schema from apiVersion/kind: the served resource, else the client's `<Version><Kind>`."""
    api_version, kind = str(obj.get("apiVersion", "")), str(obj.get("kind", ""))
    rt = by_kind(api_version, kind)
    model = rt.model if rt else api_version.rpartition("/")[2].capitalize() + kind
    return _Schema(model if _field_types(model) else None)


# --- strategic merge --------------------------------------------------------------------------------

def _merge_map(original: dict[str, Any], patch: dict[str, Any], schema: _Schema) -> dict[str, Any]:
    """Merge `patch` into `original` (mutated and returned)."""
    directive = patch.get(_DIRECTIVE)
    if directive is not None:
        rest = {k: v for k, v in patch.items() if k != _DIRECTIVE}
        if directive == "delete":
            return {}
        if directive == "replace":
            return _merge_map({}, rest, schema)
        if directive != "merge":
            raise _unprocessable(f"invalid strategic merge patch: unknown $patch directive {directive!r}")
        patch = rest
    patch = dict(patch)
    _retain_keys(original, patch)
    handled = _apply_element_orders(original, patch, schema)
    for key, value in patch.items():
        if key in handled or key.startswith(_SET_ORDER):
            continue
        if key.startswith(_DELETE_PRIMITIVES):
            _delete_primitives(original, key.removeprefix(_DELETE_PRIMITIVES), value)
        elif value is None:
            original.pop(key, None)
        elif key not in original and isinstance(value, dict) and _DIRECTIVE in value:
            continue  # as apimachinery's removeDirectives: a directive on a field that does not exist is dropped
        else:
            original[key] = _merge_value(original.get(key), value, schema=schema, key=key)
    return original


def _merge_value(original: Any, value: Any, *, schema: _Schema, key: str) -> Any:
    if isinstance(value, dict):
        return _merge_map(original if isinstance(original, dict) else {}, value, schema.field(key))
    merge_key = schema.merge_key(key) if isinstance(value, list) else None
    if merge_key is None:
        return value
    return _merge_list(original if isinstance(original, list) else [], value,
                       merge_key=merge_key, schema=schema.element(key))


def _retain_keys(original: dict[str, Any], patch: dict[str, Any]) -> None:
    """`$retainKeys`: drop every field of `original` not listed (how kubectl clears a union's old member)."""
    if _RETAIN_KEYS not in patch:
        return
    retain = patch.pop(_RETAIN_KEYS)
    if not isinstance(retain, list):
        raise _unprocessable("invalid strategic merge patch: $retainKeys must be a list of field names")
    for key, value in patch.items():
        if value is not None and not key.startswith("$") and key not in retain:
            raise _unprocessable(f"invalid strategic merge patch: field {key!r} is not listed in $retainKeys")
    for key in [k for k in original if k not in retain]:
        del original[key]


def _delete_primitives(original: dict[str, Any], field: str, values: Any) -> None:
    if not isinstance(values, list):
        raise _unprocessable(f"invalid strategic merge patch: {_DELETE_PRIMITIVES}{field} must be a list")
    if isinstance(original.get(field), list):
        original[field] = [item for item in original[field] if item not in values]


def _identity(item: Any, merge_key: str) -> Any:
    return item.get(merge_key, _MISSING) if merge_key and isinstance(item, dict) else item


def _check_merge_keys(items: list[Any], merge_key: str, what: str) -> None:
    for item in items:
        if not isinstance(item, dict) or merge_key not in item:
            raise _unprocessable(f"invalid strategic merge patch: {what} element {json.dumps(item)} "
                                 f"does not contain the merge key {merge_key!r}")


def _merge_list(original: list[Any], patch: list[Any], *, merge_key: str, schema: _Schema) -> list[Any]:
    """Merge a list with a merge strategy; the result is ordered as apimachinery's normalizeElementOrder does."""
    if not merge_key:
        if any(isinstance(item, dict | list) for item in patch):
            raise _unprocessable("invalid strategic merge patch: a list of primitives cannot hold maps or lists")
        merged = list(original)
        merged += [item for i, item in enumerate(patch) if item not in merged and item not in patch[:i]]
        return _ordered(merged, order=patch, server_order=original, merge_key="")
    if not all(isinstance(item, dict) for item in patch):
        raise _unprocessable("invalid strategic merge patch: a list merged by key must hold maps")
    elements, replace = [], False
    for item in patch:
        directive = item.get(_DIRECTIVE)
        if directive is None:
            elements.append(item)
        elif directive == "delete":
            _check_merge_keys([item], merge_key, "a $patch: delete")
            original = [o for o in original if _identity(o, merge_key) != item[merge_key]]
        elif directive == "replace":
            replace = True
        elif directive != "merge":
            raise _unprocessable(f"invalid strategic merge patch: unknown $patch directive {directive!r}")
    if replace:
        return [_merge_map({}, item, schema) for item in elements]
    _check_merge_keys(elements, merge_key, "list")
    merged = list(original)
    for item in elements:
        position = next((i for i, o in enumerate(merged) if _identity(o, merge_key) == item[merge_key]), None)
        if position is None:
            merged.append(_merge_map({}, item, schema))
        else:
            merged[position] = _merge_map(merged[position], item, schema)
    return _ordered(merged, order=elements, server_order=original, merge_key=merge_key)


def _ordered(merged: list[Any], *, order: list[Any], server_order: list[Any], merge_key: str) -> list[Any]:
    """Items named in `order` come in that order; the others keep their server order and are interleaved
    by their positions in `server_order` (apimachinery's partition + normalizeElementOrder + mergeSortedSlice)."""
    wanted = [_identity(item, merge_key) for item in order]
    server = [_identity(item, merge_key) for item in server_order]

    def index(ids: list[Any], item: Any) -> int:
        identity = _identity(item, merge_key)
        return ids.index(identity) if identity in ids else -1

    from_patch = sorted((m for m in merged if index(wanted, m) >= 0), key=lambda m: index(wanted, m))
    server_only = [m for m in merged if index(wanted, m) < 0]
    result: list[Any] = []
    while from_patch and server_only:
        left, right = index(server, server_only[0]), index(server, from_patch[0])
        take_server = left >= 0 and right >= 0 and left < right
        result.append(server_only.pop(0) if take_server else from_patch.pop(0))
    return result + from_patch + server_only


def _apply_element_orders(original: dict[str, Any], patch: dict[str, Any], schema: _Schema) -> set[str]:
    """Merge each list that has a `$setElementOrder/<list>` and put it in that order; returns the lists done."""
    handled: set[str] = set()
    for key, order in patch.items():
        if not key.startswith(_SET_ORDER):
            continue
        field = key.removeprefix(_SET_ORDER)
        merge_key = schema.merge_key(field)
        if merge_key is None:  # not a merging list here: the list itself (if any) just replaces
            continue
        if not isinstance(order, list):
            raise _unprocessable(f"invalid strategic merge patch: {key} must be a list")
        if merge_key:
            _check_merge_keys(order, merge_key, key)
        current = original.get(field)
        if field not in patch and not isinstance(current, list):
            continue
        merged = current if field not in patch else _merge_value(current, patch[field], schema=schema, key=field)
        if merged is None:
            original.pop(field, None)
        elif isinstance(merged, list):
            original[field] = _ordered(merged, order=order, server_order=current if isinstance(current, list) else [],
                                       merge_key=merge_key)
        else:  # the patch turned the list into something else; there is nothing to order
            original[field] = merged
        handled.add(field)
    return handled


# --- the three patch types --------------------------------------------------------------------------

def _json_merge(target: Any, patch: Any) -> Any:
    """RFC 7386 MergePatch."""
    if not isinstance(patch, dict):
        return patch
    result = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = _json_merge(result.get(key), value)
    return result


def _json_patch(original: dict[str, Any], operations: Any) -> Any:
    """RFC 6902, one operation at a time so that the error names the failing operation."""
    if not isinstance(operations, list) or not all(isinstance(op, dict) for op in operations):
        raise _bad_request("a JSON patch must be a JSON array of operation objects")
    document: Any = original
    for number, operation in enumerate(operations):
        try:
            document = jsonpatch.JsonPatch([operation]).apply(document)
        except (jsonpatch.JsonPatchException, jsonpointer.JsonPointerException, TypeError, KeyError) as exc:
            raise _unprocessable(f"json patch operation {number} ({operation.get('op')} {operation.get('path')}) "
                                 f"failed: {exc}") from exc
    return document


def _strategic_merge(original: dict[str, Any], patch: Any) -> dict[str, Any]:
    return _merge_map(original, patch, _schema_for(original))


_PATCHERS: dict[str, Callable[[dict[str, Any], Any], Any]] = {
    MERGE_PATCH: _json_merge,
    JSON_PATCH: _json_patch,
    STRATEGIC_MERGE_PATCH: _strategic_merge,
}


def apply_patch(*, content_type: str, original: dict[str, Any], body: bytes) -> dict[str, Any]:
    """The object `original` becomes after a PATCH with this Content-Type and body (all but server-side apply)."""
    media_type = content_type.partition(";")[0].strip().lower()
    patcher = _PATCHERS.get(media_type)
    if patcher is None:
        raise ApiError(415, "UnsupportedMediaType",
                       f"the patch content type {media_type!r} is not supported; use one of "
                       f"{', '.join(_PATCHERS)} (or {APPLY_PATCH} for server-side apply)")
    try:
        patch = json.loads(body)
    except ValueError as exc:
        raise _bad_request(f"the patch body is not valid JSON: {exc}") from exc
    if media_type != JSON_PATCH and not isinstance(patch, dict):
        raise _bad_request(f"a {media_type} body must be a JSON object")
    result = patcher(copy.deepcopy(original), patch)
    if not isinstance(result, dict):
        raise _unprocessable("the patched object is not a JSON object")
    return result


def _without_managed_fields(obj: dict[str, Any]) -> dict[str, Any]:
    """Field managers are not tracked, so `metadata.managedFields` is never stored (absent beats wrong)."""
    metadata = obj.get("metadata")
    if isinstance(metadata, dict):
        metadata.pop("managedFields", None)
    return obj


def server_side_apply(*, original: dict[str, Any] | None, applied: dict[str, Any]) -> dict[str, Any]:
    """Create-or-merge for `application/apply-patch+yaml`: `applied` (parsed by the caller) becomes the object
    when none exists, else it is merged into `original` with strategic-merge semantics. Field ownership
    and conflicts between managers are not implemented; a `resourceVersion` in `applied` is carried over,
    so the caller's optimistic-concurrency check applies to it as Kubernetes does."""
    if not isinstance(applied, dict):
        raise _bad_request("an apply patch must be a YAML or JSON object")
    applied = _without_managed_fields(copy.deepcopy(applied))
    if original is None:
        return applied
    for field in ("apiVersion", "kind"):
        if field in applied and applied[field] != original.get(field):
            raise _bad_request(f"the applied object's {field} {applied[field]!r} does not match "
                               f"the existing object's {original.get(field)!r}")
    return _without_managed_fields(_merge_map(copy.deepcopy(original), applied, _schema_for(original)))
