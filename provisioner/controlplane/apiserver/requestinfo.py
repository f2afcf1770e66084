"""What a request is about, derived from its method, path and query the way kube-apiserver does it.

Authorization and dispatch both start from a `RequestInfo`, so they can never disagree on which
resource, namespace, name or verb a request touches.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from provisioner.controlplane.apiserver.status import ApiError

__all__ = ["RequestInfo", "go_bool", "parse_request"]

_NAMESPACE_SUBRESOURCES = frozenset({"status", "finalize"})
_TRUE = frozenset({"1", "t", "T", "TRUE", "true", "True"})
_FALSE = frozenset({"0", "f", "F", "FALSE", "false", "False", ""})


def go_bool(value: str | None) -> bool:
    """A query boolean as Go's strconv.ParseBool reads it (the Python client sends `True`)."""
    if value is None or value in _FALSE:
        return False
    if value in _TRUE:
        return True
    raise ApiError(400, "BadRequest", f"invalid boolean value {value!r}: use true or false")


@dataclass(frozen=True)
class RequestInfo:
    """`resource_request` is False for discovery, /version, /healthz and other non-resource paths."""

    path: str
    verb: str
    resource_request: bool
    prefix: str = ""  # "api" or "apis"
    group: str = ""
    version: str = ""
    resource: str = ""
    subresource: str = ""
    namespace: str = ""
    name: str = ""


def _verb(method: str, *, has_name: bool, watch: bool) -> str:
    if method in ("GET", "HEAD"):
        if watch:
            return "watch"
        return "get" if has_name else "list"
    if method == "POST":
        return "create"
    if method == "PUT":
        return "update"
    if method == "PATCH":
        return "patch"
    if method == "DELETE":
        return "delete" if has_name else "deletecollection"
    return method.lower()


def parse_request(method: str, path: str, query: Mapping[str, str]) -> RequestInfo:
    parts = [p for p in path.split("/") if p]
    non_resource = RequestInfo(path=path, verb=method.lower(), resource_request=False)
    if not parts or parts[0] not in ("api", "apis"):
        return non_resource
    if parts[0] == "api":
        if len(parts) < 3:
            return non_resource
        prefix, group, version, rest = "api", "", parts[1], parts[2:]
    else:
        if len(parts) < 4:
            return non_resource
        prefix, group, version, rest = "apis", parts[1], parts[2], parts[3:]
    watch = go_bool(query.get("watch"))
    if rest[0] == "watch":
        watch, rest = True, rest[1:]
    namespace = ""
    if rest and rest[0] == "namespaces" and len(rest) > 1:
        namespace = rest[1]
        if len(rest) > 2 and rest[2] not in _NAMESPACE_SUBRESOURCES:
            rest = rest[2:]
    if not rest:
        return non_resource
    resource = rest[0]
    name = rest[1] if len(rest) > 1 else ""
    subresource = rest[2] if len(rest) > 2 else ""
    if len(rest) > 3:
        return RequestInfo(path=path, verb="unknown", resource_request=True, prefix=prefix, group=group,
                           version=version, resource=resource, subresource="/".join(rest[2:]),
                           namespace=namespace, name=name)
    return RequestInfo(path=path, verb=_verb(method, has_name=bool(name), watch=watch), resource_request=True,
                       prefix=prefix, group=group, version=version, resource=resource, subresource=subresource,
                       namespace=namespace, name=name)
