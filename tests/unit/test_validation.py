"""Validation: every offending field with its path and Kubernetes cause type; valid objects pass."""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

import pytest
from kubernetes.client import ApiClient

from provisioner.controlplane.apiserver.defaults import apply_defaults
from provisioner.controlplane.apiserver.resources import ResourceType, by_kind
from provisioner.controlplane.apiserver.status import FieldError
from provisioner.controlplane.apiserver.validation import unknown_fields, validate

Obj = dict[str, Any]


def _pod_spec() -> Obj:
    return {"containers": [{"name": "web", "image": "nginx:1.25", "ports": [{"containerPort": 80, "name": "http"}],
                            "resources": {"limits": {"cpu": "500m", "memory": "128Mi"}}}]}


VALID: dict[str, Obj] = {
    "Pod": {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "web", "namespace": "default",
                                                            "labels": {"app": "web"}}, "spec": _pod_spec()},
    "Deployment": {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web"},
                   "spec": {"replicas": 2, "selector": {"matchLabels": {"app": "web"}},
                            "template": {"metadata": {"labels": {"app": "web"}}, "spec": _pod_spec()}}},
    "ReplicaSet": {"apiVersion": "apps/v1", "kind": "ReplicaSet", "metadata": {"name": "web-1"},
                   "spec": {"selector": {"matchExpressions": [{"key": "app", "operator": "In", "values": ["web"]}]},
                            "template": {"metadata": {"labels": {"app": "web"}}, "spec": _pod_spec()}}},
    "Service": {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "web"},
                "spec": {"selector": {"app": "web"}, "ports": [{"name": "http", "port": 80, "targetPort": "http"},
                                                              {"name": "https", "port": 443}]}},
    "Namespace": {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "team-a"}},
    "Node": {"apiVersion": "v1", "kind": "Node", "metadata": {"name": "node-1.example"},
             "spec": {"taints": [{"key": "dedicated", "effect": "NoSchedule"}]},
             "status": {"capacity": {"cpu": "2", "memory": "4Gi"}}},
    "ConfigMap": {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "cfg"}, "data": {"a.conf": "x"}},
    "Secret": {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s"}, "data": {"token": "c2VjcmV0"}},
    "Lease": {"apiVersion": "coordination.k8s.io/v1", "kind": "Lease", "metadata": {"name": "leader"},
              "spec": {"holderIdentity": "a", "leaseDurationSeconds": 15}},
    "Event": {"apiVersion": "v1", "kind": "Event", "metadata": {"name": "web.1", "namespace": "default"},
              "involvedObject": {"kind": "Pod", "name": "web", "namespace": "default"}, "type": "Normal",
              "reason": "Scheduled", "message": "ok"},
    "Role": {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role", "metadata": {"name": "reader"},
             "rules": [{"apiGroups": [""], "resources": ["pods"], "verbs": ["get", "list"]}]},
    "ClusterRole": {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
                    "metadata": {"name": "system:reader"},
                    "rules": [{"nonResourceURLs": ["/healthz"], "verbs": ["get"]}]},
    "RoleBinding": {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding", "metadata": {"name": "rb"},
                    "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "reader"},
                    "subjects": [{"kind": "User", "name": "alice"}]},
    "ClusterRoleBinding": {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding",
                           "metadata": {"name": "crb"},
                           "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "x"},
                           "subjects": [{"kind": "ServiceAccount", "name": "sa", "namespace": "default"}]},
    "ServiceAccount": {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "default"}},
    "Endpoints": {"apiVersion": "v1", "kind": "Endpoints", "metadata": {"name": "web"},
                  "subsets": [{"addresses": [{"ip": "10.0.0.1"}], "ports": [{"port": 80}]}]},
}


def _rt(obj: Obj) -> ResourceType:
    rt = by_kind(obj["apiVersion"], obj["kind"])
    assert rt is not None
    return rt


@pytest.mark.parametrize("kind", sorted(VALID))
def test_valid_object_passes_and_defaults_satisfy_the_official_client(kind: str) -> None:
    obj = copy.deepcopy(VALID[kind])
    rt = _rt(obj)
    assert validate(rt, obj) == []
    apply_defaults(rt, obj)
    assert validate(rt, obj) == []
    ApiClient()._ApiClient__deserialize(obj, rt.model)  # type: ignore[attr-defined]  # raises on a bad model


def _set(path: str, value: Any) -> Callable[[Obj], None]:
    """A mutation: set (or with value DELETE, remove) the dotted path; `[n]` indexes lists."""
    def mutate(obj: Obj) -> None:
        *parents, last = path.replace("[", ".").replace("]", "").split(".")
        node: Any = obj
        for part in parents:
            node = node[int(part)] if isinstance(node, list) else node.setdefault(part, {})
        key: Any = int(last) if isinstance(node, list) else last
        if value is DELETE:
            del node[key]
        elif isinstance(node, list) and key == len(node):
            node.append(value)
        else:
            node[key] = value
    return mutate


DELETE = object()

INVALID = [
    ("Pod", "metadata.name", DELETE, "metadata.name", "FieldValueRequired"),
    ("Pod", "metadata.name", "Web_1", "metadata.name", "FieldValueInvalid"),
    ("Pod", "metadata.namespace", "Bad.NS", "metadata.namespace", "FieldValueInvalid"),
    ("Pod", "metadata.labels", {"app": "-bad-"}, "metadata.labels", "FieldValueInvalid"),
    ("Pod", "metadata.labels", {"bad key!": "x"}, "metadata.labels", "FieldValueInvalid"),
    ("Pod", "metadata.annotations", {"example.com/": "x"}, "metadata.annotations", "FieldValueInvalid"),
    ("Pod", "spec", DELETE, "spec.containers", "FieldValueRequired"),
    ("Pod", "spec.containers", [], "spec.containers", "FieldValueRequired"),
    ("Pod", "spec.containers[0].image", DELETE, "spec.containers[0].image", "FieldValueRequired"),
    ("Pod", "spec.containers[0].name", DELETE, "spec.containers[0].name", "FieldValueRequired"),
    ("Pod", "spec.containers[0].name", "Web", "spec.containers[0].name", "FieldValueInvalid"),
    ("Pod", "spec.containers[1]", {"name": "web", "image": "x"}, "spec.containers[1].name", "FieldValueDuplicate"),
    ("Pod", "spec.containers[0].ports[0].containerPort", 0, "spec.containers[0].ports[0].containerPort",
     "FieldValueInvalid"),
    ("Pod", "spec.containers[0].ports[0].containerPort", 65536, "spec.containers[0].ports[0].containerPort",
     "FieldValueInvalid"),
    ("Pod", "spec.containers[0].ports[0].containerPort", "80", "spec.containers[0].ports[0].containerPort",
     "FieldValueTypeInvalid"),
    ("Pod", "spec.containers[0].ports[0].protocol", "ICMP", "spec.containers[0].ports[0].protocol",
     "FieldValueNotSupported"),
    ("Pod", "spec.containers[0].imagePullPolicy", "Sometimes", "spec.containers[0].imagePullPolicy",
     "FieldValueNotSupported"),
    ("Pod", "spec.containers[0].resources.limits.cpu", "lots", "spec.containers[0].resources.limits[cpu]",
     "FieldValueInvalid"),
    ("Pod", "spec.containers[0].volumeMounts", [{"name": "data", "mountPath": "/d"}],
     "spec.containers[0].volumeMounts[0].name", "FieldValueNotFound"),
    ("Pod", "spec.restartPolicy", "Sometimes", "spec.restartPolicy", "FieldValueNotSupported"),
    ("Pod", "spec.dnsPolicy", "Google", "spec.dnsPolicy", "FieldValueNotSupported"),
    ("Pod", "spec.nodeSelector", "disk=ssd", "spec.nodeSelector", "FieldValueTypeInvalid"),
    ("Pod", "metadata.creationTimestamp", "yesterday", "metadata.creationTimestamp", "FieldValueInvalid"),
    ("Deployment", "spec.selector", DELETE, "spec.selector", "FieldValueRequired"),
    ("Deployment", "spec.selector", {"matchLabels": {"app": "other"}}, "spec.template.metadata.labels",
     "FieldValueInvalid"),
    ("Deployment", "spec.selector", {}, "spec.selector", "FieldValueInvalid"),
    ("Deployment", "spec.replicas", -1, "spec.replicas", "FieldValueInvalid"),
    ("Deployment", "spec.strategy", {"type": "Canary"}, "spec.strategy.type", "FieldValueNotSupported"),
    ("Deployment", "spec.template.spec.restartPolicy", "Never", "spec.template.spec.restartPolicy",
     "FieldValueNotSupported"),
    ("Deployment", "spec.template.spec.containers[0].image", "", "spec.template.spec.containers[0].image",
     "FieldValueRequired"),
    ("ReplicaSet", "spec.selector.matchExpressions[0].values", [], "spec.selector.matchExpressions[0].values",
     "FieldValueRequired"),
    ("Service", "spec.ports", [], "spec.ports", "FieldValueRequired"),
    ("Service", "spec.ports[0].port", 70000, "spec.ports[0].port", "FieldValueInvalid"),
    ("Service", "spec.ports[0].port", DELETE, "spec.ports[0].port", "FieldValueRequired"),
    ("Service", "spec.ports[1].name", "http", "spec.ports[1].name", "FieldValueDuplicate"),
    ("Service", "spec.ports[1].name", DELETE, "spec.ports[1].name", "FieldValueRequired"),
    ("Service", "spec.ports[0].targetPort", "Not_A_Name", "spec.ports[0].targetPort", "FieldValueInvalid"),
    ("Service", "spec.type", "Magic", "spec.type", "FieldValueNotSupported"),
    ("Service", "metadata.name", "web.example", "metadata.name", "FieldValueInvalid"),
    ("Namespace", "metadata.name", "team.a", "metadata.name", "FieldValueInvalid"),
    ("Namespace", "metadata.namespace", "default", "metadata.namespace", "FieldValueForbidden"),
    ("Node", "spec.taints[0].effect", "Sometimes", "spec.taints[0].effect", "FieldValueNotSupported"),
    ("Node", "status.capacity.cpu", "two", "status.capacity[cpu]", "FieldValueInvalid"),
    ("ConfigMap", "data", {"bad key": "x"}, "data[bad key]", "FieldValueInvalid"),
    ("ConfigMap", "data", {"n": 1}, "data[n]", "FieldValueTypeInvalid"),
    ("Secret", "data", {"token": "not base64!"}, "data[token]", "FieldValueInvalid"),
    ("Lease", "spec.leaseDurationSeconds", 0, "spec.leaseDurationSeconds", "FieldValueInvalid"),
    ("Event", "involvedObject", DELETE, "involvedObject", "FieldValueRequired"),
    ("Event", "involvedObject.namespace", "other", "involvedObject.namespace", "FieldValueInvalid"),
    ("Role", "rules[0].verbs", [], "rules[0].verbs", "FieldValueRequired"),
    ("Role", "rules[0].verbs", DELETE, "rules[0].verbs", "FieldValueRequired"),
    ("Role", "rules[0].apiGroups", DELETE, "rules[0].apiGroups", "FieldValueRequired"),
    ("Role", "rules[0].nonResourceURLs", ["/x"], "rules[0].nonResourceURLs", "FieldValueInvalid"),
    ("RoleBinding", "roleRef.kind", "User", "roleRef.kind", "FieldValueNotSupported"),
    ("RoleBinding", "roleRef.name", DELETE, "roleRef.name", "FieldValueRequired"),
    ("RoleBinding", "subjects[0].kind", "Robot", "subjects[0].kind", "FieldValueNotSupported"),
    ("ClusterRoleBinding", "roleRef.kind", "Role", "roleRef.kind", "FieldValueNotSupported"),
    ("ClusterRoleBinding", "subjects[0].namespace", DELETE, "subjects[0].namespace", "FieldValueRequired"),
]


@pytest.mark.parametrize(("kind", "path", "value", "error_path", "error_type"), [
    pytest.param(*case, id=f"{case[0]}-{case[1]}-{'delete' if case[2] is DELETE else case[2]!r}"[:80])
    for case in INVALID
])
def test_invalid_object_names_the_field_and_cause(kind: str, path: str, value: Any, error_path: str,
                                                  error_type: str) -> None:
    obj = copy.deepcopy(VALID[kind])
    _set(path, value)(obj)
    errors = validate(_rt(obj), obj)
    assert (error_path, error_type) in [(e.path, e.type) for e in errors], errors
    assert all(isinstance(e, FieldError) and e.message for e in errors)


def test_every_error_is_reported_at_once() -> None:
    obj = copy.deepcopy(VALID["Pod"])
    obj["metadata"]["name"] = "Bad_Name"
    obj["spec"]["restartPolicy"] = "Sometimes"
    obj["spec"]["containers"].append({"name": "web"})
    paths = {e.path for e in validate(_rt(obj), obj)}
    assert {"metadata.name", "spec.restartPolicy", "spec.containers[1].name", "spec.containers[1].image"} <= paths


def test_messages_read_like_kubernetes() -> None:
    obj = copy.deepcopy(VALID["Pod"])
    obj["spec"]["restartPolicy"] = "Sometimes"
    del obj["spec"]["containers"][0]["image"]
    messages = {str(e) for e in validate(_rt(obj), obj)}
    assert "spec.containers[0].image: Required value" in messages
    assert 'spec.restartPolicy: Unsupported value: "Sometimes": supported values: "Always", "OnFailure", "Never"' \
        in messages


def test_generate_name_stands_in_for_name() -> None:
    obj = copy.deepcopy(VALID["Pod"])
    obj["metadata"] = {"generateName": "web-"}
    assert validate(_rt(obj), obj) == []


def test_unknown_fields_are_listed_but_not_errors() -> None:
    obj = copy.deepcopy(VALID["Pod"])
    obj["spec"]["containers"][0]["imagee"] = "typo"
    obj["metadata"]["labelz"] = {}
    obj["spec"]["nodeSelector"] = {"any-key": "is-a-map-value"}
    assert validate(_rt(obj), obj) == []
    assert unknown_fields(_rt(obj), obj) == ["metadata.labelz", "spec.containers[0].imagee"]


def _defaulted(kind: str) -> Obj:
    obj = copy.deepcopy(VALID[kind])
    apply_defaults(_rt(obj), obj)
    obj["metadata"]["uid"] = "u-1"
    return obj


UPDATES = [
    ("Pod", "spec.containers[0].image", "nginx:1.26", None),
    ("Pod", "spec.activeDeadlineSeconds", 30, None),
    ("Pod", "spec.tolerations", [{"key": "k", "operator": "Exists"}], None),
    ("Pod", "spec.containers[0].ports[0].containerPort", 81, "spec.containers"),
    ("Pod", "spec.restartPolicy", "Never", "spec"),
    ("Pod", "metadata.name", "other", "metadata.name"),
    ("Pod", "metadata.uid", "u-2", "metadata.uid"),
    ("Pod", "metadata.labels", {"app": "changed"}, None),
    ("Deployment", "spec.replicas", 5, None),
    ("Deployment", "spec.selector", {"matchLabels": {"app": "web", "tier": "x"}}, "spec.selector"),
    ("Service", "spec.clusterIP", "10.96.0.99", "spec.clusterIP"),
    ("Service", "spec.ports[0].port", 8080, None),
    ("RoleBinding", "roleRef.name", "writer", "roleRef"),
]


@pytest.mark.parametrize(("kind", "path", "value", "error_path"), [
    pytest.param(*case, id=f"{case[0]}-{case[1]}-{'allowed' if case[3] is None else 'immutable'}")
    for case in UPDATES
])
def test_updates_keep_immutable_fields(kind: str, path: str, value: Any, error_path: str | None) -> None:
    old = _defaulted(kind)
    if kind == "Service":
        old["spec"]["clusterIP"] = "10.96.0.10"
    new = copy.deepcopy(old)
    _set(path, value)(new)
    errors = validate(_rt(new), new, old=old)
    if error_path is None:
        assert errors == []
    else:
        assert error_path in [e.path for e in errors], errors


def test_pod_may_be_bound_to_a_node_once() -> None:
    old = _defaulted("Pod")
    bound = copy.deepcopy(old)
    bound["spec"]["nodeName"] = "node-1"
    assert validate(_rt(bound), bound, old=old) == []
    moved = copy.deepcopy(bound)
    moved["spec"]["nodeName"] = "node-2"
    assert [e.path for e in validate(_rt(moved), moved, old=bound)] == ["spec"]


def test_immutable_config_map_data_cannot_change() -> None:
    old = _defaulted("ConfigMap")
    old["immutable"] = True
    new = copy.deepcopy(old)
    new["data"] = {"a.conf": "y"}
    assert [e.path for e in validate(_rt(new), new, old=old)] == ["data"]
