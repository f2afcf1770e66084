"""Bad input gets a clear Status error and stores nothing."""

from __future__ import annotations

import json
import uuid

import pytest
import urllib3
from conftest import DevCluster, Kubectl

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def ns(kubectl: Kubectl) -> str:
    name = f"bad-{uuid.uuid4().hex[:6]}"
    kubectl("create", "namespace", name, check=True)
    return name


def _post(http: urllib3.PoolManager, url: str, body: bytes, content_type: str = "application/json") -> tuple[int, dict]:
    response = http.request("POST", url, body=body, headers={"Content-Type": content_type})
    return response.status, json.loads(response.data)


def _configmaps(http: urllib3.PoolManager, dev_cluster: DevCluster, ns: str) -> list[str]:
    response = http.request("GET", f"{dev_cluster.server}/api/v1/namespaces/{ns}/configmaps")
    return [item["metadata"]["name"] for item in json.loads(response.data)["items"]]


@pytest.mark.parametrize(("body", "content_type", "code", "reason", "says"), [
    pytest.param(b'{"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "j"', "application/json",
                 400, "BadRequest", "not valid JSON", id="truncated-json"),
    pytest.param(b"apiVersion: v1\nkind: ConfigMap\nmetadata: {name: [\n", "application/yaml",
                 400, "BadRequest", "not valid YAML", id="malformed-yaml"),
    pytest.param(b'["not", "an", "object"]', "application/json", 400, "BadRequest", "must be an object",
                 id="json-array"),
    pytest.param(b'{"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "k"}}', "application/json",
                 400, "BadRequest", "does not match", id="kind-mismatch"),
    pytest.param(b"\x0a\x02v1", "application/vnd.kubernetes.protobuf", 415, "UnsupportedMediaType",
                 "Protocol Buffers", id="protobuf"),
])
def test_malformed_bodies_are_rejected_with_a_status(http: urllib3.PoolManager, dev_cluster: DevCluster, ns: str,
                                                     body: bytes, content_type: str, code: int, reason: str,
                                                     says: str) -> None:
    status, answer = _post(http, f"{dev_cluster.server}/api/v1/namespaces/{ns}/configmaps", body, content_type)
    assert (status, answer["kind"], answer["reason"]) == (code, "Status", reason)
    assert says in answer["message"]
    assert _configmaps(http, dev_cluster, ns) == []


def test_bodies_over_one_and_a_half_mebibytes_are_refused(http: urllib3.PoolManager, dev_cluster: DevCluster,
                                                          ns: str) -> None:
    big = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "big"}, "data": {"x": "y" * (1536 * 1024)}}
    status, answer = _post(http, f"{dev_cluster.server}/api/v1/namespaces/{ns}/configmaps", json.dumps(big).encode())
    assert (status, answer["reason"]) == (413, "RequestEntityTooLarge")
    assert _configmaps(http, dev_cluster, ns) == []


def test_invalid_objects_get_422_with_every_field_path(http: urllib3.PoolManager, dev_cluster: DevCluster,
                                                       ns: str) -> None:
    pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "Bad_Name"},
           "spec": {"containers": [{"name": "c"}]}}
    status, answer = _post(http, f"{dev_cluster.server}/api/v1/namespaces/{ns}/pods", json.dumps(pod).encode())
    assert (status, answer["reason"]) == (422, "Invalid")
    fields = {cause["field"] for cause in answer["details"]["causes"]}
    assert "metadata.name" in fields
    assert "spec.containers[0].image" in fields
    listed = http.request("GET", f"{dev_cluster.server}/api/v1/namespaces/{ns}/pods")
    assert json.loads(listed.data)["items"] == []


def test_unknown_versions_and_kinds_are_not_found(http: urllib3.PoolManager, dev_cluster: DevCluster, ns: str,
                                                  kubectl: Kubectl) -> None:
    for path in ("/apis/apps/v9/deployments", "/api/v1/namespaces/{ns}/widgets", "/apis/nothing.example/v1"):
        response = http.request("GET", dev_cluster.server + path.format(ns=ns))
        answer = json.loads(response.data)
        assert (response.status, answer["kind"], answer["reason"]) == (404, "Status", "NotFound")
    manifest = "apiVersion: example.com/v1\nkind: Widget\nmetadata: {name: w}\n"
    assert kubectl("-n", ns, "apply", "-f", "-", stdin=manifest).returncode != 0
    result = kubectl("-n", ns, "apply", "--validate=false", "-f", "-", stdin=manifest)
    assert result.returncode != 0 and 'no matches for kind "Widget"' in result.stderr
    result = kubectl("-n", ns, "apply", "-f", "-", stdin="apiVersion: v1\nkind: ConfigMap\nmetadata: {name: [\n")
    assert result.returncode != 0
    assert _configmaps(http, dev_cluster, ns) == []


def test_anonymous_requests_are_unauthorized(dev_cluster: DevCluster) -> None:
    anonymous = urllib3.PoolManager(ca_certs=str(dev_cluster.ca_file), cert_reqs="CERT_REQUIRED")
    response = anonymous.request("GET", f"{dev_cluster.server}/api/v1/namespaces")
    assert response.status == 401 and json.loads(response.data)["reason"] == "Unauthorized"


def test_unknown_fields_are_refused_under_strict_field_validation(http: urllib3.PoolManager, dev_cluster: DevCluster,
                                                                  ns: str, kubectl: Kubectl) -> None:
    body = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "strict"}, "data": {}, "extra": 1}
    status, answer = _post(http, f"{dev_cluster.server}/api/v1/namespaces/{ns}/configmaps?fieldValidation=Strict",
                           json.dumps(body).encode())
    assert (status, answer["reason"]) == (400, "BadRequest")
    assert 'unknown field "extra"' in answer["message"]
    manifest = "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: strict}\nspecial: true\n"
    assert kubectl("-n", ns, "apply", "-f", "-", stdin=manifest).returncode != 0
    assert _configmaps(http, dev_cluster, ns) == []


def test_kubectl_typed_generators_work_because_they_fall_back_to_json(kubectl: Kubectl, ns: str) -> None:
    kubectl("-n", ns, "create", "deployment", "generated", "--image=busybox", check=True)
    assert kubectl("-n", ns, "get", "deploy", "generated", "-o", "jsonpath={.spec.replicas}", check=True).stdout == "1"
