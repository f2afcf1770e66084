"""The served kinds' schemas, read from the official Python client's generated models.

The client's models are what every Python client validates responses against, so the server takes
its OpenAPI documents, structural validation and `kubectl explain` text from them rather than from a
hand-kept copy. Each model is introspected once per process (`functools.cache`) from its
`openapi_types`, `attribute_map` and pydantic field info (required flag, description); the results
are immutable and safe to share.
"""

from __future__ import annotations

import functools
import re
import typing
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from types import MappingProxyType

import kubernetes.client.models

__all__ = ["FieldSchema", "ModelSchema", "TypeRef", "definition_name", "model_schema", "parse_type",
           "reachable_models"]

# TypeRef.kind values
STRING, INTEGER, NUMBER, BOOLEAN = "string", "integer", "number", "boolean"
DATETIME, BYTES, INT_OR_STRING, ANY = "date-time", "byte", "int-or-string", "any"
MODEL, ARRAY, MAP = "model", "array", "map"

_PRIMITIVES = {"str": STRING, "int": INTEGER, "float": NUMBER, "bool": BOOLEAN, "datetime": DATETIME,
               "date": DATETIME, "bytes": BYTES}
_LIST_RE = re.compile(r"List\[(.+)\]")
_DICT_RE = re.compile(r"Dict\[str, (.+)\]")

# Go packages of the client's `V1<Name>` models that are not core/v1 (the client drops the package).
_META = "io.k8s.apimachinery.pkg.apis.meta.v1"
_PACKAGES: dict[str, str] = {
    **dict.fromkeys(("ObjectMeta", "ListMeta", "LabelSelector", "LabelSelectorRequirement", "ManagedFieldsEntry",
                     "OwnerReference", "Condition", "Status", "StatusCause", "StatusDetails", "DeleteOptions",
                     "Preconditions", "APIResource", "APIResourceList", "APIGroup", "APIGroupList",
                     "GroupVersionForDiscovery", "ServerAddressByClientCIDR", "WatchEvent"), _META),
    **dict.fromkeys(("Deployment", "DeploymentSpec", "DeploymentStatus", "DeploymentStrategy", "DeploymentCondition",
                     "DeploymentList", "RollingUpdateDeployment", "ReplicaSet", "ReplicaSetSpec", "ReplicaSetStatus",
                     "ReplicaSetCondition", "ReplicaSetList"), "io.k8s.api.apps.v1"),
    **dict.fromkeys(("Lease", "LeaseSpec", "LeaseList"), "io.k8s.api.coordination.v1"),
    **dict.fromkeys(("Role", "RoleBinding", "RoleRef", "ClusterRole", "ClusterRoleBinding", "PolicyRule",
                     "AggregationRule", "RoleList", "RoleBindingList", "ClusterRoleList", "ClusterRoleBindingList"),
                    "io.k8s.api.rbac.v1"),
    **dict.fromkeys(("Scale", "ScaleSpec", "ScaleStatus"), "io.k8s.api.autoscaling.v1"),
}
_PREFIXED = re.compile(r"(Core|Rbac|Apps|Coordination)V1(\w+)")


@dataclass(frozen=True)
class TypeRef:
    """A field's type: a primitive kind, a model (`model`), or an array/map of `item`."""

    kind: str
    model: str = ""
    item: TypeRef | None = None


@dataclass(frozen=True)
class FieldSchema:
    name: str  # JSON name
    type: TypeRef
    required: bool
    description: str


@dataclass(frozen=True)
class ModelSchema:
    model: str  # client class name, e.g. "V1PodSpec"
    description: str
    fields: Mapping[str, FieldSchema]  # by JSON name, in the client's order


def parse_type(text: str, annotation: object = None) -> TypeRef:
    """Turn an `openapi_types` string into a TypeRef; `annotation` tells int-or-string from free-form `object`."""
    if text in _PRIMITIVES:
        return TypeRef(_PRIMITIVES[text])
    if text == "object":
        args = set(_flatten(annotation))
        return TypeRef(INT_OR_STRING if {int, str} <= args else ANY)
    if m := _LIST_RE.fullmatch(text):
        return TypeRef(ARRAY, item=parse_type(m.group(1)))
    if m := _DICT_RE.fullmatch(text):
        return TypeRef(MAP, item=parse_type(m.group(1)))
    if hasattr(getattr(kubernetes.client.models, text, None), "openapi_types"):
        return TypeRef(MODEL, model=text)
    return TypeRef(ANY)


def _flatten(annotation: object) -> Iterable[object]:
    """The plain types inside Optional/Union/Annotated."""
    args = typing.get_args(annotation)
    if not args:
        yield annotation
        return
    if typing.get_origin(annotation) is typing.Annotated:
        yield from _flatten(args[0])
        return
    for arg in args:
        yield from _flatten(arg)


def _class_description(cls: type) -> str:
    doc = (cls.__doc__ or "").split("Attributes:")[0]
    return " ".join(doc.split())


@functools.cache
def model_schema(model: str) -> ModelSchema:
    """The schema of one client model (a field typed by a model often has no description of its own)."""
    cls = getattr(kubernetes.client.models, model)
    infos = {info.serialization_alias or name: info for name, info in cls.model_fields.items()}
    fields: dict[str, FieldSchema] = {}
    for attr, text in cls.openapi_types.items():
        name = cls.attribute_map[attr]
        info = infos[name]
        ref = parse_type(text, info.annotation)
        fields[name] = FieldSchema(name, ref, info.is_required(), info.description or "")
    return ModelSchema(model, _class_description(cls), MappingProxyType(fields))


def _models_in(ref: TypeRef) -> Iterable[str]:
    if ref.kind == MODEL:
        yield ref.model
    elif ref.item is not None:
        yield from _models_in(ref.item)


def reachable_models(roots: Iterable[str]) -> list[str]:
    """Every model the roots refer to, transitively, roots first."""
    order: list[str] = []
    pending = list(roots)
    while pending:
        model = pending.pop(0)
        if model in order:
            continue
        order.append(model)
        for field in model_schema(model).fields.values():
            pending.extend(_models_in(field.type))
    return order


def definition_name(model: str) -> str:
    """The Kubernetes OpenAPI definition name of a client model: V1Pod -> io.k8s.api.core.v1.Pod."""
    if m := _PREFIXED.fullmatch(model):
        return f"io.k8s.api.{m.group(1).lower()}.v1.{m.group(2)}"
    name = model.removeprefix("V1")
    return f"{_PACKAGES.get(name, 'io.k8s.api.core.v1')}.{name}"
