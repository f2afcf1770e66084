"""May this user do this: RBAC over stored Roles, ClusterRoles, RoleBindings and ClusterRoleBindings.

Evaluation follows Kubernetes' RBAC authorizer: a request is allowed when any rule reachable from a
binding whose subjects include the user (or one of its groups, or the service account it is) matches
verb, API group, resource (with subresource), resource name, or, for non-resource requests, the URL.
ClusterRoleBindings apply everywhere; a RoleBinding applies only in its namespace, whether it refers
to a Role or a ClusterRole. Only grants exist, never denials. `system:masters` is always allowed.

The rule index is rebuilt only when the `RuleSource` reports a new version, so `authorize()` is a
few dict lookups plus a scan of the rules bound to the caller. Rebuilds are serialised by a lock;
concurrent callers during a rebuild wait for it rather than repeat it.
"""

from __future__ import annotations

import asyncio
import logging
from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from provisioner.controlplane.apiserver.authn import UserInfo
from provisioner.controlplane.apiserver.resources import ResourceType, by_kind
from provisioner.controlplane.apiserver.status import ApiError

__all__ = ["MASTERS_GROUP", "Decision", "RBACAuthorizer", "RequestAttributes", "RuleSource", "bootstrap_objects",
           "forbidden"]

log = logging.getLogger(__name__)

MASTERS_GROUP = "system:masters"
_RBAC = "rbac.authorization.k8s.io/v1"


def _rbac_type(kind: str) -> ResourceType:
    rt = by_kind(_RBAC, kind)
    if rt is None:
        raise RuntimeError(f"{kind} missing from the served RESOURCES")
    return rt


_ROLE, _CLUSTER_ROLE = _rbac_type("Role"), _rbac_type("ClusterRole")
_ROLE_BINDING, _CLUSTER_ROLE_BINDING = _rbac_type("RoleBinding"), _rbac_type("ClusterRoleBinding")


@dataclass(frozen=True)
class RequestAttributes:
    """What a request asks to do, as the HTTP layer derived it from method, path and query.

    `verb` is the Kubernetes verb (get, list, watch, create, update, patch, delete, deletecollection)
    for resource requests and the lower-case HTTP method for non-resource ones. For requests on a
    namespace object itself (`/api/v1/namespaces/foo`), `namespace` is "foo", as in Kubernetes, so a
    RoleBinding in "foo" can grant access to it.
    """

    user: UserInfo
    verb: str
    group: str
    resource: str
    subresource: str
    namespace: str
    name: str
    path: str
    resource_request: bool


@dataclass(frozen=True)
class Decision:
    """`reason` says which binding allowed, or reads like Kubernetes' forbidden message."""

    allowed: bool
    reason: str


class RuleSource(Protocol):
    """Where RBAC objects come from; the API server implements it over its store.

    `version()` must change whenever any Role, ClusterRole, RoleBinding or ClusterRoleBinding is
    created, updated or deleted (an etcd revision of the last RBAC change, or a counter bumped by a
    watch); the authorizer re-lists all four kinds only when it differs from the last one seen.
    It is called on every authorization, so it must be cheap and must not await.
    """

    def version(self) -> int: ...

    async def list_objects(self, rt: ResourceType) -> list[dict[str, Any]]: ...


@dataclass(frozen=True)
class _Rule:
    """A PolicyRule, normalised to sets."""

    verbs: frozenset[str]
    api_groups: frozenset[str]
    resources: frozenset[str]
    resource_names: frozenset[str]
    non_resource_urls: tuple[str, ...]

    def allows(self, attrs: RequestAttributes) -> bool:
        if "*" not in self.verbs and attrs.verb not in self.verbs:
            return False
        if not attrs.resource_request:
            return any(_url_matches(pattern, attrs.path) for pattern in self.non_resource_urls)
        return (
            ("*" in self.api_groups or attrs.group in self.api_groups)
            and self._resource_matches(attrs.resource, attrs.subresource)
            and (not self.resource_names or attrs.name in self.resource_names)
        )

    def _resource_matches(self, resource: str, subresource: str) -> bool:
        if "*" in self.resources:
            return True
        if subresource:
            return f"{resource}/{subresource}" in self.resources or f"*/{subresource}" in self.resources
        return resource in self.resources


def _url_matches(pattern: str, path: str) -> bool:
    if pattern == "*" or pattern == path:
        return True
    return pattern.endswith("*") and path.startswith(pattern[:-1])


def _rules(role: Mapping[str, Any]) -> tuple[_Rule, ...]:
    return tuple(
        _Rule(
            verbs=frozenset(rule.get("verbs") or ()),
            api_groups=frozenset(rule.get("apiGroups") or ()),
            resources=frozenset(rule.get("resources") or ()),
            resource_names=frozenset(rule.get("resourceNames") or ()),
            non_resource_urls=tuple(rule.get("nonResourceURLs") or ()),
        )
        for rule in role.get("rules") or ()
    )


@dataclass(frozen=True)
class _Grant:
    """The rules of one role as one binding grants them; `via` names both for the allow reason."""

    via: str
    rules: tuple[_Rule, ...]

    def allows(self, attrs: RequestAttributes) -> bool:
        return any(rule.allows(attrs) for rule in self.rules)


_Subject = tuple[str, str]  # ("User" | "Group", name); service accounts become their user name


def _subject_keys(subjects: Iterable[Mapping[str, Any]], *, binding_namespace: str) -> list[_Subject]:
    keys: list[_Subject] = []
    for s in subjects:
        kind, name = s.get("kind", ""), s.get("name", "")
        if kind == "ServiceAccount":
            keys.append(("User", f"system:serviceaccount:{s.get('namespace') or binding_namespace}:{name}"))
        elif kind in ("User", "Group"):
            keys.append((kind, name))
    return keys


def _caller_keys(user: UserInfo) -> list[_Subject]:
    return [("User", user.name), *(("Group", g) for g in user.groups)]


@dataclass(frozen=True)
class _Index:
    """Grants by subject: cluster-wide ones, and per (namespace, subject) ones from RoleBindings."""

    version: int
    cluster: Mapping[_Subject, tuple[_Grant, ...]]
    namespaced: Mapping[tuple[str, _Subject], tuple[_Grant, ...]]


def _name(obj: Mapping[str, Any]) -> str:
    return str(obj.get("metadata", {}).get("name", ""))


def _namespace(obj: Mapping[str, Any]) -> str:
    return str(obj.get("metadata", {}).get("namespace", ""))


def _build_index(
    *,
    version: int,
    roles: list[dict[str, Any]],
    cluster_roles: list[dict[str, Any]],
    role_bindings: list[dict[str, Any]],
    cluster_role_bindings: list[dict[str, Any]],
) -> _Index:
    role_rules = {(_namespace(r), _name(r)): _rules(r) for r in roles}
    cluster_role_rules = {_name(r): _rules(r) for r in cluster_roles}
    cluster: defaultdict[_Subject, list[_Grant]] = defaultdict(list)
    namespaced: defaultdict[tuple[str, _Subject], list[_Grant]] = defaultdict(list)
    for binding in cluster_role_bindings:
        ref = binding.get("roleRef") or {}
        ref_name = ref.get("name", "")
        rules = cluster_role_rules.get(ref_name) if ref.get("kind") == "ClusterRole" else None
        if rules is None:
            log.warning("ClusterRoleBinding %s refers to missing %s", _name(binding), ref)
            continue
        grant = _Grant(f'ClusterRoleBinding "{_name(binding)}" of ClusterRole "{ref_name}"', rules)
        for key in _subject_keys(binding.get("subjects") or (), binding_namespace=""):
            cluster[key].append(grant)
    for binding in role_bindings:
        ns, ref = _namespace(binding), binding.get("roleRef") or {}
        kind, ref_name = ref.get("kind"), ref.get("name", "")
        rules = cluster_role_rules.get(ref_name) if kind == "ClusterRole" else role_rules.get((ns, ref_name))
        if rules is None:
            log.warning("RoleBinding %s/%s refers to missing %s", ns, _name(binding), ref)
            continue
        grant = _Grant(f'RoleBinding "{ns}/{_name(binding)}" of {kind} "{ref_name}"', rules)
        for key in _subject_keys(binding.get("subjects") or (), binding_namespace=ns):
            namespaced[(ns, key)].append(grant)
    return _Index(
        version=version,
        cluster={k: tuple(v) for k, v in cluster.items()},
        namespaced={k: tuple(v) for k, v in namespaced.items()},
    )


def _denial(attrs: RequestAttributes) -> str:
    """Kubernetes' forbidden message for these attributes."""
    who = f'User "{attrs.user.name}" cannot {attrs.verb}'
    if not attrs.resource_request:
        return f'{who} path "{attrs.path}"'
    resource = f"{attrs.resource}/{attrs.subresource}" if attrs.subresource else attrs.resource
    scope = f'in the namespace "{attrs.namespace}"' if attrs.namespace else "at the cluster scope"
    return f'{who} resource "{resource}" in API group "{attrs.group}" {scope}'


def forbidden(attrs: RequestAttributes, decision: Decision) -> ApiError:
    """The 403 Status for a denied request, worded like kube-apiserver's."""
    if not attrs.resource_request:
        return ApiError(403, "Forbidden", f"forbidden: {decision.reason}")
    qualified = f"{attrs.resource}.{attrs.group}" if attrs.group else attrs.resource
    target = f'{qualified} "{attrs.name}"' if attrs.name else qualified
    return ApiError(403, "Forbidden", f"{target} is forbidden: {decision.reason}",
                    {"name": attrs.name, "group": attrs.group, "kind": attrs.resource})


class RBACAuthorizer:
    """Authorizes requests against the RBAC objects of a `RuleSource`, re-indexing on version change."""

    def __init__(self, source: RuleSource) -> None:
        self._source = source
        self._index: _Index | None = None
        self._lock = asyncio.Lock()

    async def _current_index(self) -> _Index:
        version = self._source.version()
        index = self._index
        if index is not None and index.version == version:
            return index
        async with self._lock:
            version = self._source.version()
            if self._index is None or self._index.version != version:
                self._index = _build_index(
                    version=version,
                    roles=await self._source.list_objects(_ROLE),
                    cluster_roles=await self._source.list_objects(_CLUSTER_ROLE),
                    role_bindings=await self._source.list_objects(_ROLE_BINDING),
                    cluster_role_bindings=await self._source.list_objects(_CLUSTER_ROLE_BINDING),
                )
            return self._index

    async def authorize(self, attrs: RequestAttributes) -> Decision:
        if MASTERS_GROUP in attrs.user.groups:
            return Decision(True, f'RBAC: allowed for group "{MASTERS_GROUP}"')
        index = await self._current_index()
        for key in _caller_keys(attrs.user):
            candidates = index.cluster.get(key, ())
            if attrs.namespace and attrs.resource_request:
                candidates = candidates + index.namespaced.get((attrs.namespace, key), ())
            for grant in candidates:
                if grant.allows(attrs):
                    return Decision(True, f'RBAC: allowed by {grant.via} to {key[0]} "{key[1]}"')
        return Decision(False, _denial(attrs))


_READ = ("get", "list", "watch")
_WRITE = ("create", "delete", "deletecollection", "patch", "update")
_RBAC_GROUP = "rbac.authorization.k8s.io"


def _rule(verbs: Iterable[str], *, groups: Iterable[str] = ("",), resources: Iterable[str]) -> dict[str, Any]:
    return {"apiGroups": list(groups), "resources": list(resources), "verbs": list(verbs)}


def _url_rule(verbs: Iterable[str], urls: Iterable[str]) -> dict[str, Any]:
    return {"nonResourceURLs": list(urls), "verbs": list(verbs)}


def _defaults_metadata(name: str) -> dict[str, Any]:
    return {"name": name, "labels": {"kubernetes.io/bootstrapping": "rbac-defaults"},
            "annotations": {"rbac.authorization.kubernetes.io/autoupdate": "true"}}


def _cluster_role(name: str, rules: list[dict[str, Any]]) -> dict[str, Any]:
    return {"apiVersion": _RBAC, "kind": "ClusterRole", "metadata": _defaults_metadata(name), "rules": rules}


def _cluster_role_binding(name: str, *subjects: tuple[str, str]) -> dict[str, Any]:
    """A binding of the ClusterRole of the same name to (kind, name) subjects."""
    return {
        "apiVersion": _RBAC, "kind": "ClusterRoleBinding", "metadata": _defaults_metadata(name),
        "roleRef": {"apiGroup": _RBAC_GROUP, "kind": "ClusterRole", "name": name},
        "subjects": [{"apiGroup": _RBAC_GROUP, "kind": kind, "name": subject} for kind, subject in subjects],
    }


def _view_rules() -> list[dict[str, Any]]:
    return [
        _rule(_READ, resources=("configmaps", "endpoints", "events", "namespaces", "namespaces/status", "pods",
                                "pods/log", "pods/status", "serviceaccounts", "services", "services/status")),
        _rule(_READ, groups=("apps",), resources=("deployments", "deployments/scale", "deployments/status",
                                                  "replicasets", "replicasets/scale", "replicasets/status")),
    ]


def _edit_rules() -> list[dict[str, Any]]:
    return [
        *_view_rules(),
        _rule(_READ, resources=("secrets",)),
        _rule(_WRITE, resources=("configmaps", "endpoints", "pods", "secrets", "serviceaccounts", "services")),
        _rule(_WRITE, groups=("apps",), resources=("deployments", "deployments/scale", "replicasets",
                                                   "replicasets/scale")),
    ]


_DISCOVERY_URLS = ("/api", "/api/*", "/apis", "/apis/*", "/healthz", "/livez", "/openapi", "/openapi/*", "/readyz",
                   "/version", "/version/")
_PUBLIC_INFO_URLS = ("/healthz", "/livez", "/readyz", "/version", "/version/")


def bootstrap_objects() -> list[dict[str, Any]]:
    """The default ClusterRoles and ClusterRoleBindings the API server creates at start when missing.

    admin/edit/view follow Kubernetes' aggregated roles, limited to the resources served here.
    The control plane component roles are deliberately broad (whole API groups for the controller
    manager, every node object and pod for system:nodes) until those components' exact needs settle.
    Fresh dicts on every call; each carries `kubernetes.io/bootstrapping: rbac-defaults`.
    """
    authenticated = ("Group", "system:authenticated")
    return [
        _cluster_role("cluster-admin", [_rule(("*",), groups=("*",), resources=("*",)), _url_rule(("*",), ("*",))]),
        _cluster_role("admin", [*_edit_rules(),
                                _rule((*_READ, *_WRITE), groups=(_RBAC_GROUP,), resources=("rolebindings", "roles"))]),
        _cluster_role("edit", _edit_rules()),
        _cluster_role("view", _view_rules()),
        _cluster_role("system:discovery", [_url_rule(("get",), _DISCOVERY_URLS)]),
        _cluster_role("system:public-info-viewer", [_url_rule(("get",), _PUBLIC_INFO_URLS)]),
        _cluster_role("system:basic-user", [
            _rule(("create",), groups=("authorization.k8s.io",),
                  resources=("selfsubjectaccessreviews", "selfsubjectrulesreviews")),
            _rule(("create",), groups=("authentication.k8s.io",), resources=("selfsubjectreviews",)),
        ]),
        _cluster_role("system:kube-controller-manager", [
            _rule(("*",), groups=("", "apps", "coordination.k8s.io"), resources=("*",)),
            # The garbage collector and namespace loops watch and delete every kind (kube's generic-garbage-collector
            # and namespace-controller roles).
            _rule((*_READ, "delete", "deletecollection", "patch", "update"), groups=("*",), resources=("*",)),
        ]),
        _cluster_role("system:kube-scheduler", [
            _rule(_READ, resources=("namespaces", "nodes", "pods", "services")),
            _rule(("create",), resources=("bindings", "pods/binding")),
            _rule(("patch", "update"), resources=("pods/status",)),
            _rule(("create", "patch", "update"), resources=("events",)),
            _rule(("create", "get", "list", "update", "watch"), groups=("coordination.k8s.io",),
                  resources=("leases",)),
        ]),
        _cluster_role("system:node", [
            _rule(("create", "patch", "update", *_READ), resources=("nodes", "nodes/status")),
            _rule(("create", "delete", *_READ), resources=("pods",)),
            _rule(("patch", "update"), resources=("pods/status",)),
            _rule(("create", "patch", "update"), resources=("events",)),
            _rule(_READ, resources=("configmaps", "endpoints", "namespaces", "secrets", "services")),
            _rule((*_READ, *_WRITE), groups=("coordination.k8s.io",), resources=("leases",)),
        ]),
        _cluster_role_binding("cluster-admin", ("Group", MASTERS_GROUP)),
        _cluster_role_binding("system:discovery", authenticated),
        _cluster_role_binding("system:basic-user", authenticated),
        _cluster_role_binding("system:public-info-viewer", authenticated, ("Group", "system:unauthenticated")),
        _cluster_role_binding("system:kube-controller-manager", ("User", "system:kube-controller-manager")),
        _cluster_role_binding("system:kube-scheduler", ("User", "system:kube-scheduler")),
        _cluster_role_binding("system:node", ("Group", "system:nodes")),
    ]
