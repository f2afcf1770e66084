"""The schema table read from the official client's models."""

from __future__ import annotations

import pytest

from provisioner.controlplane.apiserver import schema
from provisioner.controlplane.apiserver.resources import RESOURCES


@pytest.mark.parametrize(("model", "field", "required"), [
    pytest.param("V1Container", "name", True, id="container-name-required"),
    pytest.param("V1Container", "image", False, id="container-image-optional-in-model"),
    pytest.param("V1PodSpec", "containers", True, id="podspec-containers-required"),
    pytest.param("V1ObjectMeta", "name", False, id="metadata-name-optional-in-model"),
    pytest.param("V1DeploymentSpec", "selector", True, id="deployment-selector-required"),
    pytest.param("V1PolicyRule", "verbs", True, id="policy-rule-verbs-required"),
    pytest.param("CoreV1Event", "involvedObject", True, id="event-involved-object-required"),
])
def test_required_flags_follow_the_client_models(model: str, field: str, required: bool) -> None:
    assert schema.model_schema(model).fields[field].required is required


@pytest.mark.parametrize(("model", "field", "kind"), [
    pytest.param("V1ServicePort", "targetPort", schema.INT_OR_STRING, id="service-target-port"),
    pytest.param("V1RollingUpdateDeployment", "maxSurge", schema.INT_OR_STRING, id="max-surge"),
    pytest.param("V1ManagedFieldsEntry", "fieldsV1", schema.ANY, id="free-form-object"),
    pytest.param("V1ObjectMeta", "creationTimestamp", schema.DATETIME, id="timestamp"),
    pytest.param("V1Secret", "data", schema.MAP, id="secret-data-map"),
    pytest.param("V1PodSpec", "containers", schema.ARRAY, id="containers-array"),
    pytest.param("V1LifecycleHandler", "exec", schema.MODEL, id="aliased-python-attribute"),
])
def test_field_types_are_classified(model: str, field: str, kind: str) -> None:
    assert schema.model_schema(model).fields[field].type.kind == kind


def test_secret_data_values_are_bytes_and_limits_are_strings() -> None:
    assert schema.model_schema("V1Secret").fields["data"].type.item == schema.TypeRef(schema.BYTES)
    limits = schema.model_schema("V1ResourceRequirements").fields["limits"].type
    assert limits == schema.TypeRef(schema.MAP, item=schema.TypeRef(schema.STRING))


def test_fields_carry_the_client_descriptions() -> None:
    assert "There must be at least one container" in schema.model_schema("V1PodSpec").fields["containers"].description
    assert schema.model_schema("V1DeploymentStrategy").description.startswith("DeploymentStrategy describes")


@pytest.mark.parametrize(("model", "name"), [
    pytest.param("V1Pod", "io.k8s.api.core.v1.Pod", id="core"),
    pytest.param("CoreV1Event", "io.k8s.api.core.v1.Event", id="prefixed-core"),
    pytest.param("V1ObjectMeta", "io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta", id="meta"),
    pytest.param("V1Deployment", "io.k8s.api.apps.v1.Deployment", id="apps"),
    pytest.param("V1RollingUpdateDeployment", "io.k8s.api.apps.v1.RollingUpdateDeployment", id="apps-nested"),
    pytest.param("V1Lease", "io.k8s.api.coordination.v1.Lease", id="coordination"),
    pytest.param("RbacV1Subject", "io.k8s.api.rbac.v1.Subject", id="prefixed-rbac"),
    pytest.param("V1RoleRef", "io.k8s.api.rbac.v1.RoleRef", id="rbac-nested"),
    pytest.param("V1Scale", "io.k8s.api.autoscaling.v1.Scale", id="scale"),
    pytest.param("V1ScaleIOVolumeSource", "io.k8s.api.core.v1.ScaleIOVolumeSource", id="not-scale"),
])
def test_definition_names_follow_kubernetes(model: str, name: str) -> None:
    assert schema.definition_name(model) == name


def test_served_models_have_distinct_definition_names() -> None:
    models = schema.reachable_models(rt.model for rt in RESOURCES)
    names = [schema.definition_name(m) for m in models]
    assert len(set(names)) == len(names)


def test_reachable_models_are_closed_under_references() -> None:
    models = set(schema.reachable_models(["V1Pod"]))
    assert {"V1Pod", "V1PodSpec", "V1Container", "V1ObjectMeta", "V1ContainerPort"} <= models
    for model in models:
        for field in schema.model_schema(model).fields.values():
            ref = field.type
            while ref.item is not None:
                ref = ref.item
            assert ref.kind != schema.MODEL or ref.model in models
