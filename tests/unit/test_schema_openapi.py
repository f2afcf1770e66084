"""The /openapi/v3 index and documents, checked the way kubectl reads them."""

from __future__ import annotations

import json
from typing import Any

import pytest

from provisioner.controlplane.apiserver.openapi import openapi_v3_document, openapi_v3_index
from provisioner.controlplane.apiserver.resources import RESOURCES, ResourceType, group_versions

KINDS = [pytest.param(rt, id=f"{rt.group or 'core'}-{rt.kind}") for rt in RESOURCES]


def _gvk(rt: ResourceType) -> dict[str, str]:
    return {"group": rt.group, "version": rt.version, "kind": rt.kind}


def _refs(node: Any) -> list[str]:
    if isinstance(node, dict):
        own = [node["$ref"]] if isinstance(node.get("$ref"), str) else []
        return own + [ref for value in node.values() for ref in _refs(value)]
    if isinstance(node, list):
        return [ref for value in node for ref in _refs(value)]
    return []


def test_index_lists_every_served_group_version_with_a_hash() -> None:
    paths = openapi_v3_index()["paths"]
    expected = {f"apis/{g}/{v}" if g else f"api/{v}" for g, v in group_versions()}
    assert set(paths) == expected
    for key, entry in paths.items():
        url, _, digest = entry["serverRelativeURL"].partition("?hash=")
        assert url == f"/openapi/v3/{key}"
        assert len(digest) == 128


def test_index_hash_is_stable() -> None:
    assert openapi_v3_index() == openapi_v3_index()


@pytest.mark.parametrize("rt", KINDS)
def test_patch_operation_supports_field_validation_for_every_kind(rt: ResourceType) -> None:
    # kubectl's supportsQueryParamV3: a PATCH op tagged with the GVK that has a `fieldValidation` query parameter.
    doc = openapi_v3_document(rt.group, rt.version)
    assert doc is not None
    patches = [item["patch"] for item in doc["paths"].values()
               if "patch" in item and item["patch"]["x-kubernetes-group-version-kind"] == _gvk(rt)]
    assert patches
    for op in patches:
        assert any(p["name"] == "fieldValidation" and p["in"] == "query" for p in op["parameters"])
        assert "application/merge-patch+json" in op["requestBody"]["content"]
        assert "application/strategic-merge-patch+json" in op["requestBody"]["content"]


@pytest.mark.parametrize("rt", KINDS)
def test_kind_schema_carries_its_group_version_kind(rt: ResourceType) -> None:
    schemas = openapi_v3_document(rt.group, rt.version)["components"]["schemas"]
    tagged = [name for name, s in schemas.items() if _gvk(rt) in s.get("x-kubernetes-group-version-kind", [])]
    assert len(tagged) == 1
    assert schemas[tagged[0]]["properties"]["metadata"]["allOf"] == [
        {"$ref": "#/components/schemas/io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta"}]


@pytest.mark.parametrize(("group", "version"), [pytest.param(g, v, id=g or "core") for g, v in group_versions()])
def test_every_reference_resolves_inside_its_document(group: str, version: str) -> None:
    doc = openapi_v3_document(group, version)
    names = set(doc["components"]["schemas"])
    refs = _refs(doc)
    assert refs
    assert {ref.removeprefix("#/components/schemas/") for ref in refs} <= names
    json.dumps(doc)  # plain JSON all the way down


def test_documents_hold_descriptions_for_kubectl_explain() -> None:
    schemas = openapi_v3_document("", "v1")["components"]["schemas"]
    containers = schemas["io.k8s.api.core.v1.PodSpec"]["properties"]["containers"]
    assert containers["type"] == "array"
    assert "at least one container" in containers["description"]
    assert "containers" in schemas["io.k8s.api.core.v1.PodSpec"]["required"]
    apps = openapi_v3_document("apps", "v1")["components"]["schemas"]
    strategy = apps["io.k8s.api.apps.v1.DeploymentSpec"]["properties"]["strategy"]
    assert strategy["description"].startswith("DeploymentStrategy describes")


def test_int_or_string_fields_are_marked() -> None:
    schemas = openapi_v3_document("", "v1")["components"]["schemas"]
    target = schemas["io.k8s.api.core.v1.ServicePort"]["properties"]["targetPort"]
    assert target["allOf"] == [{"$ref": "#/components/schemas/io.k8s.apimachinery.pkg.util.intstr.IntOrString"}]
    int_or_string = schemas["io.k8s.apimachinery.pkg.util.intstr.IntOrString"]
    assert int_or_string["x-kubernetes-int-or-string"] is True
    assert int_or_string["format"] == "int-or-string"


def test_scale_subresource_patch_is_tagged_as_autoscaling_scale() -> None:
    paths = openapi_v3_document("apps", "v1")["paths"]
    scale = paths["/apis/apps/v1/namespaces/{namespace}/deployments/{name}/scale"]["patch"]
    assert scale["x-kubernetes-group-version-kind"] == {"group": "autoscaling", "version": "v1", "kind": "Scale"}


def test_unserved_group_version_has_no_document() -> None:
    assert openapi_v3_document("batch", "v1") is None
    assert openapi_v3_document("", "v2") is None


@pytest.mark.parametrize(("definition", "field", "strategy", "key"), [
    pytest.param("io.k8s.api.core.v1.PodSpec", "containers", "merge", "name", id="containers-by-name"),
    pytest.param("io.k8s.api.core.v1.Container", "ports", "merge", "containerPort", id="container-ports"),
    pytest.param("io.k8s.api.core.v1.PodSpec", "volumes", "merge,retainKeys", "name", id="volumes"),
    pytest.param("io.k8s.api.core.v1.ServiceSpec", "ports", "merge", "port", id="service-ports"),
    pytest.param("io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta", "finalizers", "merge", None, id="finalizers"),
])
def test_merging_lists_publish_their_patch_strategy(definition: str, field: str, strategy: str,
                                                    key: str | None) -> None:
    prop = openapi_v3_document("", "v1")["components"]["schemas"][definition]["properties"][field]
    assert prop["x-kubernetes-patch-strategy"] == strategy
    assert prop.get("x-kubernetes-patch-merge-key") == key


def test_atomic_lists_publish_no_patch_strategy() -> None:
    spec = openapi_v3_document("", "v1")["components"]["schemas"]["io.k8s.api.core.v1.PodSpec"]["properties"]
    assert "x-kubernetes-patch-strategy" not in spec["tolerations"]
