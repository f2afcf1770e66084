"""Defaulting fills what the real API server fills, and leaves malformed input to validation."""

from __future__ import annotations

from typing import Any

import pytest
from kubernetes.client import ApiClient

from provisioner.controlplane.apiserver.defaults import apply_defaults, pod_qos_class, service_needs_cluster_ip
from provisioner.controlplane.apiserver.resources import ResourceType, by_kind
from provisioner.controlplane.apiserver.validation import validate

Obj = dict[str, Any]


def _rt(api_version: str, kind: str) -> ResourceType:
    rt = by_kind(api_version, kind)
    assert rt is not None
    return rt


def _pod(**container: Any) -> Obj:
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"},
            "spec": {"containers": [{"name": "c", "image": "nginx:1.25", **container}]}}


def _defaulted(obj: Obj) -> Obj:
    apply_defaults(_rt(obj["apiVersion"], obj["kind"]), obj)
    return obj


def test_pod_spec_and_container_defaults() -> None:
    pod = _defaulted(_pod(ports=[{"containerPort": 80}]))
    spec = pod["spec"]
    assert {k: spec[k] for k in ("restartPolicy", "dnsPolicy", "schedulerName", "terminationGracePeriodSeconds",
                                 "securityContext", "enableServiceLinks", "priority", "preemptionPolicy")} == {
        "restartPolicy": "Always", "dnsPolicy": "ClusterFirst", "schedulerName": "default-scheduler",
        "terminationGracePeriodSeconds": 30, "securityContext": {}, "enableServiceLinks": True, "priority": 0,
        "preemptionPolicy": "PreemptLowerPriority"}
    container = spec["containers"][0]
    assert container["terminationMessagePath"] == "/dev/termination-log"
    assert container["terminationMessagePolicy"] == "File"
    assert container["imagePullPolicy"] == "IfNotPresent"
    assert container["resources"] == {}
    assert container["ports"] == [{"containerPort": 80, "protocol": "TCP"}]
    assert pod["status"] == {"phase": "Pending", "qosClass": "BestEffort"}


def test_explicit_values_are_kept() -> None:
    pod = _pod(imagePullPolicy="Never")
    pod["spec"]["restartPolicy"] = "OnFailure"
    pod["status"] = {"phase": "Running", "qosClass": "Burstable"}
    _defaulted(pod)
    assert pod["spec"]["restartPolicy"] == "OnFailure"
    assert pod["spec"]["containers"][0]["imagePullPolicy"] == "Never"
    assert pod["status"] == {"phase": "Running", "qosClass": "Burstable"}


@pytest.mark.parametrize(("image", "policy"), [
    pytest.param("nginx", "Always", id="untagged"),
    pytest.param("nginx:latest", "Always", id="latest"),
    pytest.param("nginx:1.25", "IfNotPresent", id="tagged"),
    pytest.param("registry:5000/team/app", "Always", id="registry-port-untagged"),
    pytest.param("registry:5000/team/app:v2", "IfNotPresent", id="registry-port-tagged"),
    pytest.param("nginx@sha256:" + "a" * 64, "IfNotPresent", id="digest"),
])
def test_image_pull_policy_follows_the_tag(image: str, policy: str) -> None:
    assert _defaulted(_pod(image=image))["spec"]["containers"][0]["imagePullPolicy"] == policy


@pytest.mark.parametrize(("resources", "qos"), [
    pytest.param({}, "BestEffort", id="none"),
    pytest.param({"limits": {"cpu": "1", "memory": "1Gi"}}, "Guaranteed", id="limits-only-copied-to-requests"),
    pytest.param({"requests": {"cpu": "100m"}}, "Burstable", id="requests-only"),
    pytest.param({"limits": {"cpu": "1"}}, "Burstable", id="cpu-limit-only"),
    pytest.param({"limits": {"cpu": "1", "memory": "1Gi"}, "requests": {"cpu": "500m", "memory": "1Gi"}},
                 "Burstable", id="requests-below-limits"),
])
def test_qos_class(resources: Obj, qos: str) -> None:
    pod = _defaulted(_pod(resources=resources))
    assert pod["status"]["qosClass"] == qos
    assert pod_qos_class(pod["spec"]) == qos


def test_numeric_quantities_become_strings_and_requests_follow_limits() -> None:
    pod = _defaulted(_pod(resources={"limits": {"cpu": 1, "memory": "64Mi"}, "requests": {"cpu": 0.5}}))
    assert pod["spec"]["containers"][0]["resources"] == {"limits": {"cpu": "1", "memory": "64Mi"},
                                                         "requests": {"cpu": "0.5", "memory": "64Mi"}}


def test_probe_defaults() -> None:
    pod = _defaulted(_pod(livenessProbe={"httpGet": {"port": 80}}))
    assert pod["spec"]["containers"][0]["livenessProbe"] == {
        "httpGet": {"port": 80, "path": "/", "scheme": "HTTP"}, "timeoutSeconds": 1, "periodSeconds": 10,
        "successThreshold": 1, "failureThreshold": 3}


def _deployment(**spec: Any) -> Obj:
    return {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "d"},
            "spec": {"selector": {"matchLabels": {"app": "d"}},
                     "template": {"metadata": {"labels": {"app": "d"}},
                                  "spec": {"containers": [{"name": "c", "image": "nginx"}]}}, **spec}}


def test_deployment_defaults_and_template_defaults() -> None:
    spec = _defaulted(_deployment())["spec"]
    assert spec["replicas"] == 1
    assert spec["revisionHistoryLimit"] == 10
    assert spec["progressDeadlineSeconds"] == 600
    assert spec["strategy"] == {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": "25%", "maxSurge": "25%"}}
    template = spec["template"]["spec"]
    assert template["restartPolicy"] == "Always"
    assert template["containers"][0]["imagePullPolicy"] == "Always"
    assert "priority" not in template


def test_recreate_strategy_gets_no_rolling_update() -> None:
    spec = _defaulted(_deployment(strategy={"type": "Recreate"}, replicas=0))["spec"]
    assert spec["strategy"] == {"type": "Recreate"}
    assert spec["replicas"] == 0


def test_replica_set_defaults() -> None:
    rs = {"apiVersion": "apps/v1", "kind": "ReplicaSet", "metadata": {"name": "r"},
          "spec": {"selector": {"matchLabels": {"a": "b"}},
                   "template": {"metadata": {"labels": {"a": "b"}}, "spec": {"containers": [{"name": "c",
                                                                                            "image": "x:1"}]}}}}
    spec = _defaulted(rs)["spec"]
    assert spec["replicas"] == 1
    assert spec["template"]["spec"]["dnsPolicy"] == "ClusterFirst"


def test_service_defaults_after_cluster_ip_allocation() -> None:
    svc = {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "s"},
           "spec": {"ports": [{"port": 80}, {"port": 53, "protocol": "UDP", "targetPort": "dns"}]}}
    assert service_needs_cluster_ip(svc)
    svc["spec"]["clusterIP"] = "10.96.0.10"
    assert not service_needs_cluster_ip(svc)
    spec = _defaulted(svc)["spec"]
    assert spec["type"] == "ClusterIP"
    assert spec["sessionAffinity"] == "None"
    assert spec["ports"] == [{"port": 80, "protocol": "TCP", "targetPort": 80},
                             {"port": 53, "protocol": "UDP", "targetPort": "dns"}]
    assert spec["clusterIPs"] == ["10.96.0.10"]
    assert spec["ipFamilies"] == ["IPv4"]
    assert spec["ipFamilyPolicy"] == "SingleStack"
    assert spec["internalTrafficPolicy"] == "Cluster"
    assert svc["status"] == {"loadBalancer": {}}


def test_external_name_service_needs_no_cluster_ip() -> None:
    svc = {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "s"},
           "spec": {"type": "ExternalName", "externalName": "db.example.com"}}
    assert not service_needs_cluster_ip(svc)
    spec = _defaulted(svc)["spec"]
    assert "clusterIPs" not in spec
    assert "internalTrafficPolicy" not in spec


def test_node_port_service_gets_external_traffic_policy() -> None:
    svc = {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "s"},
           "spec": {"type": "NodePort", "clusterIP": "10.96.0.11", "ports": [{"port": 80}]}}
    assert _defaulted(svc)["spec"]["externalTrafficPolicy"] == "Cluster"


def test_namespace_defaults() -> None:
    ns = _defaulted({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "n"}})
    assert ns["spec"] == {"finalizers": ["kubernetes"]}
    assert ns["status"] == {"phase": "Active"}


def test_secret_type_and_string_data_folding() -> None:
    secret = _defaulted({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s"},
                         "data": {"a": "YQ=="}, "stringData": {"b": "bee"}})
    assert secret["type"] == "Opaque"
    assert secret["data"] == {"a": "YQ==", "b": "YmVl"}
    assert "stringData" not in secret


def test_binding_subjects_get_api_groups() -> None:
    binding = _defaulted({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
                          "metadata": {"name": "b"}, "roleRef": {"kind": "Role", "name": "r"},
                          "subjects": [{"kind": "User", "name": "u"}, {"kind": "ServiceAccount", "name": "s"}]})
    assert [s["apiGroup"] for s in binding["subjects"]] == ["rbac.authorization.k8s.io", ""]


@pytest.mark.parametrize("obj", [
    pytest.param({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"}, "spec": []}, id="pod-spec-list"),
    pytest.param({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"},
                  "spec": {"containers": ["nginx"]}}, id="container-string"),
    pytest.param({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "d"},
                  "spec": {"strategy": "fast", "template": 3}}, id="deployment-garbage"),
    pytest.param({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "s"}, "spec": {"ports": "80"}},
                 id="service-ports-string"),
    pytest.param({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s"}, "stringData": ["x"]},
                 id="secret-string-data-list"),
])
def test_malformed_input_is_left_for_validation(obj: Obj) -> None:
    rt = _rt(obj["apiVersion"], obj["kind"])
    apply_defaults(rt, obj)
    assert validate(rt, obj) != []


@pytest.mark.parametrize("obj", [
    pytest.param(_pod(), id="pod"),
    pytest.param(_deployment(), id="deployment"),
])
def test_defaulted_objects_satisfy_the_official_client(obj: Obj) -> None:
    rt = _rt(obj["apiVersion"], obj["kind"])
    apply_defaults(rt, obj)
    assert validate(rt, obj) == []
    model = ApiClient()._ApiClient__deserialize(obj, rt.model)  # type: ignore[attr-defined]
    assert model.to_dict(serialize=True)["metadata"]["name"] == obj["metadata"]["name"]
