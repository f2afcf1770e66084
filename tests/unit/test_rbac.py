"""RBAC: rule matching, bindings and their scope, denial wording, re-indexing, and the bootstrap policy."""

import asyncio
from typing import Any

import pytest
from kubernetes.client import ApiClient

from provisioner.controlplane.apiserver.authn import UserInfo
from provisioner.controlplane.apiserver.rbac import (
    Decision,
    RBACAuthorizer,
    RequestAttributes,
    bootstrap_objects,
    forbidden,
)
from provisioner.controlplane.apiserver.resources import ResourceType, by_kind

ALICE = UserInfo("alice", ("dev", "system:authenticated"))
RBAC = "rbac.authorization.k8s.io/v1"


class _Source:
    """An in-memory RuleSource; `version` bumps on every change, `lists` counts re-indexing."""

    def __init__(self, *objects: dict[str, Any]) -> None:
        self.objects = list(objects)
        self._version = 1
        self.lists = 0

    def add(self, obj: dict[str, Any]) -> None:
        self.objects.append(obj)
        self._version += 1

    def version(self) -> int:
        return self._version

    async def list_objects(self, rt: ResourceType) -> list[dict[str, Any]]:
        self.lists += 1
        return [o for o in self.objects if o["kind"] == rt.kind]


def _attrs(verb: str = "get", *, resource: str = "pods", group: str = "", subresource: str = "", namespace: str = "",
           name: str = "", path: str = "", user: UserInfo = ALICE) -> RequestAttributes:
    return RequestAttributes(user=user, verb=verb, group=group, resource=resource, subresource=subresource,
                             namespace=namespace, name=name, path=path, resource_request=not path)


def _role(kind: str, name: str, rules: list[dict[str, Any]], namespace: str = "") -> dict[str, Any]:
    meta = {"name": name, "namespace": namespace} if namespace else {"name": name}
    return {"apiVersion": RBAC, "kind": kind, "metadata": meta, "rules": rules}


def _binding(kind: str, name: str, *, role_kind: str, role: str, subjects: list[dict[str, Any]],
             namespace: str = "") -> dict[str, Any]:
    meta = {"name": name, "namespace": namespace} if namespace else {"name": name}
    return {"apiVersion": RBAC, "kind": kind, "metadata": meta,
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": role_kind, "name": role},
            "subjects": subjects}


def _authorize(source: _Source, attrs: RequestAttributes) -> Decision:
    return asyncio.run(RBACAuthorizer(source).authorize(attrs))


def _cluster_granted(rule: dict[str, Any]) -> _Source:
    """alice gets `rule` cluster-wide through a ClusterRoleBinding."""
    return _Source(_role("ClusterRole", "r", [rule]),
                   _binding("ClusterRoleBinding", "b", role_kind="ClusterRole", role="r",
                            subjects=[{"kind": "User", "name": "alice"}]))


@pytest.mark.parametrize(
    ("rule", "attrs", "allowed"),
    [
        pytest.param({"apiGroups": [""], "resources": ["pods"], "verbs": ["get"]}, _attrs("get"), True, id="exact"),
        pytest.param({"apiGroups": [""], "resources": ["pods"], "verbs": ["get"]}, _attrs("list"), False,
                     id="other-verb"),
        pytest.param({"apiGroups": [""], "resources": ["pods"], "verbs": ["*"]}, _attrs("deletecollection"), True,
                     id="verb-star"),
        pytest.param({"apiGroups": [""], "resources": ["deployments"], "verbs": ["get"]},
                     _attrs(resource="deployments", group="apps"), False, id="other-group"),
        pytest.param({"apiGroups": ["*"], "resources": ["deployments"], "verbs": ["get"]},
                     _attrs(resource="deployments", group="apps"), True, id="group-star"),
        pytest.param({"apiGroups": [""], "resources": ["*"], "verbs": ["get"]}, _attrs(resource="secrets"), True,
                     id="resource-star"),
        pytest.param({"apiGroups": [""], "resources": ["*"], "verbs": ["get"]},
                     _attrs(resource="pods", subresource="log"), True, id="resource-star-covers-subresources"),
        pytest.param({"apiGroups": [""], "resources": ["pods"], "verbs": ["get"]},
                     _attrs(resource="pods", subresource="log"), False, id="resource-excludes-subresource"),
        pytest.param({"apiGroups": [""], "resources": ["pods/log"], "verbs": ["get"]},
                     _attrs(resource="pods", subresource="log"), True, id="subresource"),
        pytest.param({"apiGroups": [""], "resources": ["pods/log"], "verbs": ["get"]}, _attrs(resource="pods"), False,
                     id="subresource-excludes-resource"),
        pytest.param({"apiGroups": ["apps"], "resources": ["*/scale"], "verbs": ["update"]},
                     _attrs("update", group="apps", resource="deployments", subresource="scale"), True,
                     id="star-slash-subresource"),
        pytest.param({"apiGroups": ["apps"], "resources": ["*/scale"], "verbs": ["update"]},
                     _attrs("update", group="apps", resource="deployments", subresource="status"), False,
                     id="star-slash-other-subresource"),
        pytest.param({"apiGroups": [""], "resources": ["pods"], "resourceNames": ["web"], "verbs": ["get"]},
                     _attrs(name="web"), True, id="resource-name"),
        pytest.param({"apiGroups": [""], "resources": ["pods"], "resourceNames": ["web"], "verbs": ["get"]},
                     _attrs(name="db"), False, id="other-resource-name"),
        pytest.param({"apiGroups": [""], "resources": ["pods"], "resourceNames": ["web"], "verbs": ["list"]},
                     _attrs("list"), False, id="resource-names-exclude-collections"),
        pytest.param({"nonResourceURLs": ["/healthz"], "verbs": ["get"]}, _attrs(path="/healthz"), True,
                     id="url-exact"),
        pytest.param({"nonResourceURLs": ["/healthz"], "verbs": ["get"]}, _attrs(path="/healthz/etcd"), False,
                     id="url-exact-no-prefix"),
        pytest.param({"nonResourceURLs": ["/apis/*"], "verbs": ["get"]}, _attrs(path="/apis/apps/v1"), True,
                     id="url-star-prefix"),
        pytest.param({"nonResourceURLs": ["/apis/*"], "verbs": ["get"]}, _attrs(path="/apis"), False,
                     id="url-star-needs-slash"),
        pytest.param({"nonResourceURLs": ["*"], "verbs": ["*"]}, _attrs("post", path="/anything"), True,
                     id="url-star"),
        pytest.param({"nonResourceURLs": ["/healthz"], "verbs": ["get"]}, _attrs("post", path="/healthz"), False,
                     id="url-other-verb"),
        pytest.param({"apiGroups": ["*"], "resources": ["*"], "verbs": ["*"]}, _attrs(path="/healthz"), False,
                     id="resource-rule-excludes-urls"),
        pytest.param({"nonResourceURLs": ["*"], "verbs": ["*"]}, _attrs(), False, id="url-rule-excludes-resources"),
    ],
)
def test_rule_matching(rule: dict[str, Any], attrs: RequestAttributes, allowed: bool) -> None:
    assert _authorize(_cluster_granted(rule), attrs).allowed is allowed


POD_READER = {"apiGroups": [""], "resources": ["pods"], "verbs": ["get", "list"]}


@pytest.mark.parametrize(
    ("subject", "user", "allowed"),
    [
        pytest.param({"kind": "User", "name": "alice"}, ALICE, True, id="user"),
        pytest.param({"kind": "User", "name": "bob"}, ALICE, False, id="other-user"),
        pytest.param({"kind": "Group", "name": "dev"}, ALICE, True, id="group"),
        pytest.param({"kind": "Group", "name": "alice"}, ALICE, False, id="group-named-like-user"),
        pytest.param({"kind": "Group", "name": "system:authenticated"}, ALICE, True, id="authenticated"),
        pytest.param({"kind": "ServiceAccount", "name": "robot", "namespace": "ci"},
                     UserInfo("system:serviceaccount:ci:robot", ("system:serviceaccounts",)), True,
                     id="service-account"),
        pytest.param({"kind": "ServiceAccount", "name": "robot", "namespace": "ci"},
                     UserInfo("system:serviceaccount:team:robot", ()), False, id="service-account-other-namespace"),
    ],
)
def test_cluster_role_binding_subjects(subject: dict[str, Any], user: UserInfo, allowed: bool) -> None:
    source = _Source(_role("ClusterRole", "reader", [POD_READER]),
                     _binding("ClusterRoleBinding", "b", role_kind="ClusterRole", role="reader", subjects=[subject]))
    assert _authorize(source, _attrs("list", namespace="team", user=user)).allowed is allowed


def test_role_binding_service_account_defaults_to_the_binding_namespace() -> None:
    source = _Source(_role("Role", "reader", [POD_READER], namespace="ci"),
                     _binding("RoleBinding", "b", role_kind="Role", role="reader", namespace="ci",
                              subjects=[{"kind": "ServiceAccount", "name": "robot"}]))
    robot = UserInfo("system:serviceaccount:ci:robot", ())
    assert _authorize(source, _attrs("list", namespace="ci", user=robot)).allowed


ALICE_SUBJECT = [{"kind": "User", "name": "alice"}]


@pytest.mark.parametrize(
    ("objects", "namespace", "allowed"),
    [
        pytest.param([_role("Role", "reader", [POD_READER], namespace="team"),
                      _binding("RoleBinding", "b", role_kind="Role", role="reader", namespace="team",
                               subjects=ALICE_SUBJECT)], "team", True, id="role-in-its-namespace"),
        pytest.param([_role("Role", "reader", [POD_READER], namespace="team"),
                      _binding("RoleBinding", "b", role_kind="Role", role="reader", namespace="team",
                               subjects=ALICE_SUBJECT)], "other", False, id="role-not-in-other-namespace"),
        pytest.param([_role("Role", "reader", [POD_READER], namespace="team"),
                      _binding("RoleBinding", "b", role_kind="Role", role="reader", namespace="team",
                               subjects=ALICE_SUBJECT)], "", False, id="role-not-at-cluster-scope"),
        pytest.param([_role("ClusterRole", "reader", [POD_READER]),
                      _binding("RoleBinding", "b", role_kind="ClusterRole", role="reader", namespace="team",
                               subjects=ALICE_SUBJECT)], "team", True, id="clusterrole-scoped-to-namespace"),
        pytest.param([_role("ClusterRole", "reader", [POD_READER]),
                      _binding("RoleBinding", "b", role_kind="ClusterRole", role="reader", namespace="team",
                               subjects=ALICE_SUBJECT)], "other", False, id="scoped-clusterrole-not-elsewhere"),
        pytest.param([_role("ClusterRole", "reader", [POD_READER]),
                      _binding("RoleBinding", "b", role_kind="ClusterRole", role="reader", namespace="team",
                               subjects=ALICE_SUBJECT)], "", False, id="scoped-clusterrole-not-cluster-wide"),
        pytest.param([_role("Role", "reader", [POD_READER], namespace="other"),
                      _binding("RoleBinding", "b", role_kind="Role", role="reader", namespace="team",
                               subjects=ALICE_SUBJECT)], "team", False, id="role-of-another-namespace-ignored"),
        pytest.param([_binding("ClusterRoleBinding", "b", role_kind="ClusterRole", role="missing",
                               subjects=ALICE_SUBJECT)], "team", False, id="missing-role"),
        pytest.param([_role("ClusterRole", "reader", [POD_READER]),
                      _binding("ClusterRoleBinding", "b", role_kind="ClusterRole", role="reader",
                               subjects=ALICE_SUBJECT)], "", True, id="clusterrolebinding-cluster-scope"),
        pytest.param([_role("ClusterRole", "reader", [POD_READER]),
                      _binding("ClusterRoleBinding", "b", role_kind="ClusterRole", role="reader",
                               subjects=ALICE_SUBJECT)], "any", True, id="clusterrolebinding-every-namespace"),
    ],
)
def test_binding_scope(objects: list[dict[str, Any]], namespace: str, allowed: bool) -> None:
    assert _authorize(_Source(*objects), _attrs("list", namespace=namespace)).allowed is allowed


def test_role_binding_never_grants_non_resource_urls() -> None:
    source = _Source(_role("ClusterRole", "health", [{"nonResourceURLs": ["*"], "verbs": ["get"]}]),
                     _binding("RoleBinding", "b", role_kind="ClusterRole", role="health", namespace="team",
                              subjects=ALICE_SUBJECT))
    assert not _authorize(source, _attrs(path="/healthz")).allowed


def test_system_masters_may_do_anything_without_bindings() -> None:
    admin = UserInfo("admin", ("system:masters", "system:authenticated"))
    source = _Source()
    assert _authorize(source, _attrs("delete", resource="nodes", name="n1", user=admin)).allowed
    assert _authorize(source, _attrs("post", path="/whatever", user=admin)).allowed
    assert source.lists == 0


def test_allow_reason_names_the_binding() -> None:
    decision = _authorize(_cluster_granted(POD_READER), _attrs("list"))
    assert decision == Decision(True, 'RBAC: allowed by ClusterRoleBinding "b" of ClusterRole "r" to User "alice"')


@pytest.mark.parametrize(
    ("attrs", "reason"),
    [
        pytest.param(_attrs("list", namespace="default"),
                     'User "alice" cannot list resource "pods" in API group "" in the namespace "default"',
                     id="namespaced"),
        pytest.param(_attrs("list", resource="nodes"),
                     'User "alice" cannot list resource "nodes" in API group "" at the cluster scope',
                     id="cluster-scope"),
        pytest.param(_attrs("update", group="apps", resource="deployments", subresource="scale", namespace="ns",
                            name="web"),
                     'User "alice" cannot update resource "deployments/scale" in API group "apps" in the namespace '
                     '"ns"', id="subresource"),
        pytest.param(_attrs(path="/metrics"), 'User "alice" cannot get path "/metrics"', id="non-resource"),
    ],
)
def test_denial_reads_like_kubernetes(attrs: RequestAttributes, reason: str) -> None:
    assert _authorize(_Source(), attrs) == Decision(False, reason)


@pytest.mark.parametrize(
    ("attrs", "message", "details"),
    [
        pytest.param(_attrs("get", namespace="default", name="web"),
                     'pods "web" is forbidden: User "alice" cannot get resource "pods" in API group "" in the '
                     'namespace "default"', {"name": "web", "group": "", "kind": "pods"}, id="named"),
        pytest.param(_attrs("list", group="apps", resource="deployments"),
                     'deployments.apps is forbidden: User "alice" cannot list resource "deployments" in API group '
                     '"apps" at the cluster scope', {"name": "", "group": "apps", "kind": "deployments"},
                     id="collection"),
        pytest.param(_attrs(path="/metrics"), 'forbidden: User "alice" cannot get path "/metrics"', {},
                     id="non-resource"),
    ],
)
def test_forbidden_status(attrs: RequestAttributes, message: str, details: dict[str, str]) -> None:
    status = forbidden(attrs, _authorize(_Source(), attrs)).to_status()
    assert (status["code"], status["reason"], status["message"]) == (403, "Forbidden", message)
    assert status.get("details", {}) == details


def test_index_is_rebuilt_only_when_the_source_version_changes() -> None:
    source = _Source(_role("ClusterRole", "reader", [POD_READER]))
    authorizer = RBACAuthorizer(source)

    async def scenario() -> list[bool]:
        results = [(await authorizer.authorize(_attrs("list", namespace="team"))).allowed for _ in range(50)]
        lists_before_change = source.lists
        source.add(_binding("RoleBinding", "b", role_kind="ClusterRole", role="reader", namespace="team",
                            subjects=ALICE_SUBJECT))
        results.append((await authorizer.authorize(_attrs("list", namespace="team"))).allowed)
        assert lists_before_change == 4
        return results

    results = asyncio.run(scenario())
    assert results == [False] * 50 + [True]
    assert source.lists == 8


def test_concurrent_first_requests_index_once() -> None:
    source = _Source(*_cluster_granted(POD_READER).objects)
    authorizer = RBACAuthorizer(source)

    async def scenario() -> list[Decision]:
        return await asyncio.gather(*(authorizer.authorize(_attrs("list")) for _ in range(20)))

    assert all(d.allowed for d in asyncio.run(scenario()))
    assert source.lists == 4


def _deserialize(obj: dict[str, Any]) -> object:
    """Round-trip through the official client's strict models (what clients do with listed objects)."""
    rt = by_kind(obj["apiVersion"], obj["kind"])
    assert rt is not None
    return ApiClient()._ApiClient__deserialize(obj, rt.model)  # type: ignore[attr-defined]


def test_bootstrap_objects_are_valid_for_the_official_client() -> None:
    objects = bootstrap_objects()
    names = {(o["kind"], o["metadata"]["name"]) for o in objects}
    assert len(names) == len(objects)
    for obj in objects:
        model = _deserialize(obj)
        assert model.metadata.labels == {"kubernetes.io/bootstrapping": "rbac-defaults"}  # type: ignore[attr-defined]
    role_names = {name for kind, name in names if kind == "ClusterRole"}
    for kind, name in names:
        if kind == "ClusterRoleBinding":
            assert name in role_names


def test_bootstrap_objects_are_fresh_copies() -> None:
    first = bootstrap_objects()
    first[0]["metadata"]["name"] = "changed"
    assert bootstrap_objects()[0]["metadata"]["name"] == "cluster-admin"


def _bootstrapped(*extra: dict[str, Any]) -> _Source:
    return _Source(*bootstrap_objects(), *extra)


def _bound(role: str, *, namespace: str) -> dict[str, Any]:
    return _binding("RoleBinding", f"alice-{role}", role_kind="ClusterRole", role=role, namespace=namespace,
                    subjects=ALICE_SUBJECT)


@pytest.mark.parametrize(
    ("extra", "attrs", "allowed"),
    [
        pytest.param((), _attrs(path="/api"), True, id="discovery-api"),
        pytest.param((), _attrs(path="/apis/apps/v1"), True, id="discovery-group"),
        pytest.param((), _attrs(path="/openapi/v3/api/v1"), True, id="discovery-openapi"),
        pytest.param((), _attrs(path="/version"), True, id="version"),
        pytest.param((), _attrs(path="/readyz"), True, id="readyz"),
        pytest.param((), _attrs("post", path="/api"), False, id="discovery-is-read-only"),
        pytest.param((), _attrs("list", namespace="default"), False, id="no-resources-by-default"),
        pytest.param((_bound("view", namespace="team"),), _attrs("list", namespace="team"), True, id="view-lists"),
        pytest.param((_bound("view", namespace="team"),), _attrs("get", resource="secrets", namespace="team"), False,
                     id="view-hides-secrets"),
        pytest.param((_bound("view", namespace="team"),), _attrs("create", namespace="team"), False,
                     id="view-is-read-only"),
        pytest.param((_bound("view", namespace="team"),),
                     _attrs("get", resource="pods", subresource="log", namespace="team"), True, id="view-reads-logs"),
        pytest.param((_bound("edit", namespace="team"),), _attrs("create", resource="secrets", namespace="team"),
                     True, id="edit-writes-secrets"),
        pytest.param((_bound("edit", namespace="team"),),
                     _attrs("patch", group="apps", resource="deployments", subresource="scale", namespace="team"),
                     True, id="edit-scales"),
        pytest.param((_bound("edit", namespace="team"),),
                     _attrs("create", group="rbac.authorization.k8s.io", resource="rolebindings", namespace="team"),
                     False, id="edit-cannot-grant"),
        pytest.param((_bound("admin", namespace="team"),),
                     _attrs("create", group="rbac.authorization.k8s.io", resource="rolebindings", namespace="team"),
                     True, id="admin-grants-in-namespace"),
        pytest.param((_bound("cluster-admin", namespace="team"),), _attrs("delete", resource="nodes", name="n1"),
                     False, id="namespaced-cluster-admin-not-cluster-wide"),
        pytest.param((), _attrs("create", resource="pods", subresource="binding", namespace="team", name="p",
                                user=UserInfo("system:kube-scheduler", ("system:authenticated",))), True,
                     id="scheduler-binds"),
        pytest.param((), _attrs("update", resource="nodes", subresource="status", name="n1",
                                user=UserInfo("system:node:n1", ("system:nodes", "system:authenticated"))), True,
                     id="node-status"),
        pytest.param((), _attrs("update", group="apps", resource="replicasets", subresource="status", namespace="x",
                                user=UserInfo("system:kube-controller-manager", ("system:authenticated",))), True,
                     id="controller-manager"),
        pytest.param((), _attrs("list", group="rbac.authorization.k8s.io", resource="rolebindings",
                                user=UserInfo("system:kube-controller-manager", ("system:authenticated",))), True,
                     id="controller-manager-watches-every-kind-for-gc"),
        pytest.param((), _attrs("delete", group="rbac.authorization.k8s.io", resource="roles", namespace="x",
                                name="r", user=UserInfo("system:kube-controller-manager", ("system:authenticated",))),
                     True, id="controller-manager-empties-namespaces"),
        pytest.param((), _attrs("delete", resource="pods", namespace="x", name="p",
                                user=UserInfo("system:kube-controller-manager", ("system:authenticated",))), True,
                     id="controller-manager-collects-pods"),
        pytest.param((), _attrs("get", resource="nodes", name="gone",
                                user=UserInfo("system:kube-controller-manager", ("system:authenticated",))), True,
                     id="controller-manager-checks-a-node-is-gone"),
        pytest.param((), _attrs("create", resource="events", namespace="x",
                                user=UserInfo("system:kube-controller-manager", ("system:authenticated",))), True,
                     id="controller-manager-records-events"),
        pytest.param((), _attrs("create", group="rbac.authorization.k8s.io", resource="clusterrolebindings",
                                user=UserInfo("system:kube-controller-manager", ("system:authenticated",))), False,
                     id="controller-manager-cannot-grant-itself-more"),
    ],
)
def test_bootstrap_policy(extra: tuple[dict[str, Any], ...], attrs: RequestAttributes, allowed: bool) -> None:
    assert _authorize(_bootstrapped(*extra), attrs).allowed is allowed
