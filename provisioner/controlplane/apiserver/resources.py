"""The table of served resources: what each kind is called, where it lives and what it supports.

Everything that needs to know about a kind (routing, discovery, OpenAPI, validation, RBAC, tables,
storage keys) reads it from here, so adding a resource is one entry in `RESOURCES`.
"""

from __future__ import annotations

from dataclasses import dataclass, field

__all__ = ["RESOURCES", "ResourceType", "by_kind", "by_plural", "group_versions"]

ALL_VERBS = ("create", "delete", "deletecollection", "get", "list", "patch", "update", "watch")


@dataclass(frozen=True)
class ResourceType:
    """One served resource; `model` is the official Python client's model class name for it."""

    group: str  # "" for the core group
    version: str
    kind: str
    plural: str
    namespaced: bool
    model: str
    short_names: tuple[str, ...] = ()
    subresources: frozenset[str] = field(default_factory=frozenset)
    categories: tuple[str, ...] = ()
    verbs: tuple[str, ...] = ALL_VERBS

    @property
    def singular(self) -> str:
        return self.kind.lower()

    @property
    def group_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version

    @property
    def api_version(self) -> str:
        return self.group_version

    @property
    def list_kind(self) -> str:
        return f"{self.kind}List"

    def key_prefix(self, namespace: str | None = None) -> str:
        """etcd key prefix of this resource (all namespaces, or one), ending in '/'."""
        base = f"/registry/{self.group or 'core'}/{self.plural}/"
        return f"{base}{namespace}/" if self.namespaced and namespace else base

    def key(self, name: str, namespace: str | None = None) -> str:
        return f"{self.key_prefix(namespace if self.namespaced else None)}{name}"

    def url_path(self, name: str | None = None, namespace: str | None = None) -> str:
        """Absolute API path (as used in selfLink-style messages and by clients)."""
        root = f"/apis/{self.group}/{self.version}" if self.group else f"/api/{self.version}"
        ns = f"/namespaces/{namespace}" if self.namespaced and namespace else ""
        tail = f"/{name}" if name else ""
        return f"{root}{ns}/{self.plural}{tail}"


_STATUS = frozenset({"status"})

RESOURCES: tuple[ResourceType, ...] = (
    ResourceType("", "v1", "Namespace", "namespaces", False, "V1Namespace", ("ns",), _STATUS),
    ResourceType("", "v1", "Node", "nodes", False, "V1Node", ("no",), _STATUS),
    ResourceType("", "v1", "Pod", "pods", True, "V1Pod", ("po",),
                 frozenset({"status", "binding", "log"}), ("all",)),
    ResourceType("", "v1", "Service", "services", True, "V1Service", ("svc",), _STATUS, ("all",)),
    ResourceType("", "v1", "Endpoints", "endpoints", True, "V1Endpoints", ("ep",)),
    ResourceType("", "v1", "ConfigMap", "configmaps", True, "V1ConfigMap", ("cm",)),
    ResourceType("", "v1", "Secret", "secrets", True, "V1Secret"),
    ResourceType("", "v1", "Event", "events", True, "CoreV1Event", ("ev",)),
    ResourceType("", "v1", "ServiceAccount", "serviceaccounts", True, "V1ServiceAccount", ("sa",)),
    ResourceType("apps", "v1", "Deployment", "deployments", True, "V1Deployment", ("deploy",),
                 frozenset({"status", "scale"}), ("all",)),
    ResourceType("apps", "v1", "ReplicaSet", "replicasets", True, "V1ReplicaSet", ("rs",),
                 frozenset({"status", "scale"}), ("all",)),
    ResourceType("coordination.k8s.io", "v1", "Lease", "leases", True, "V1Lease"),
    ResourceType("rbac.authorization.k8s.io", "v1", "Role", "roles", True, "V1Role"),
    ResourceType("rbac.authorization.k8s.io", "v1", "RoleBinding", "rolebindings", True, "V1RoleBinding"),
    ResourceType("rbac.authorization.k8s.io", "v1", "ClusterRole", "clusterroles", False, "V1ClusterRole"),
    ResourceType("rbac.authorization.k8s.io", "v1", "ClusterRoleBinding", "clusterrolebindings", False,
                 "V1ClusterRoleBinding"),
)


def by_plural(group: str, version: str, plural: str) -> ResourceType | None:
    for rt in RESOURCES:
        if (rt.group, rt.version, rt.plural) == (group, version, plural):
            return rt
    return None


def by_kind(api_version: str, kind: str) -> ResourceType | None:
    for rt in RESOURCES:
        if (rt.api_version, rt.kind) == (api_version, kind):
            return rt
    return None


def group_versions() -> list[tuple[str, str]]:
    """(group, version) pairs in serving order, core first."""
    seen: list[tuple[str, str]] = []
    for rt in RESOURCES:
        if (rt.group, rt.version) not in seen:
            seen.append((rt.group, rt.version))
    return seen
