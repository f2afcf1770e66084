"""OpenAPI v3: the `/openapi/v3` index and one document per served group/version.

kubectl needs these to work at all: `create`/`apply` look for a PATCH operation tagged with the
kind's `x-kubernetes-group-version-kind` that accepts the `fieldValidation` query parameter, and
`kubectl explain` renders the kind's schema found under `components.schemas` by the same extension.
Schemas come from the official client's models (see `schema`), named as Kubernetes names them
(`io.k8s.api.core.v1.Pod`), with `$ref`s between them.

Fields with a patch strategy carry `x-kubernetes-patch-strategy` / `x-kubernetes-patch-merge-key`
from `patch.patch_strategy`, the same table the server's strategic-merge patch follows, so the
patches kubectl computes for `apply` merge lists exactly the way the server applies them.
Documents are built once per process and cached; callers must not mutate them.
"""

from __future__ import annotations

import functools
import hashlib
import json
from typing import Any

import kubernetes.client.models

from provisioner.controlplane.apiserver import schema
from provisioner.controlplane.apiserver.patch import patch_strategy
from provisioner.controlplane.apiserver.resources import RESOURCES, ResourceType, group_versions

__all__ = ["openapi_v3_document", "openapi_v3_index"]

_Doc = dict[str, Any]
_REF = "#/components/schemas/"
_INT_OR_STRING = "io.k8s.apimachinery.pkg.util.intstr.IntOrString"
_PATCH = "io.k8s.apimachinery.pkg.apis.meta.v1.Patch"
_STATUS = "io.k8s.apimachinery.pkg.apis.meta.v1.Status"
_EXTRA_SCHEMAS: dict[str, _Doc] = {
    _INT_OR_STRING: {
        "description": "IntOrString is a type that can hold an int32 or a string.",
        "format": "int-or-string", "x-kubernetes-int-or-string": True,
        "anyOf": [{"type": "integer"}, {"type": "string"}],
    },
    _PATCH: {"description": "Patch is provided to give a concrete name and type to the Kubernetes PATCH request "
                            "body.", "type": "object"},
}
_PATCH_TYPES = ("application/json-patch+json", "application/merge-patch+json", "application/strategic-merge-patch+json",
                "application/apply-patch+yaml")
_SCALE_GVK = {"group": "autoscaling", "version": "v1", "kind": "Scale"}


def _query(name: str, description: str, kind: str = "string") -> _Doc:
    return {"name": name, "in": "query", "description": description, "schema": {"type": kind, "uniqueItems": True}}


_DRY_RUN = _query("dryRun", "When present, indicates that modifications should not be persisted. Valid values: All.")
_FIELD_MANAGER = _query("fieldManager", "fieldManager is a name associated with the actor or entity that is making "
                                        "these changes.")
_FIELD_VALIDATION = _query("fieldValidation", "fieldValidation instructs the server on how to handle objects in the "
                                              "request containing unknown or duplicate fields: Ignore, Warn or Strict.")
_FORCE = _query("force", "Force is going to \"force\" Apply requests.", "boolean")
_PRETTY = _query("pretty", "If 'true', then the output is pretty printed.")
_LIST_PARAMS = [_query(name, f"{name} of the list request.") for name in
                ("labelSelector", "fieldSelector", "limit", "continue", "resourceVersion", "watch",
                 "allowWatchBookmarks", "timeoutSeconds")]


def _ref(name: str) -> _Doc:
    return {"$ref": _REF + name}


def _type_schema(ref: schema.TypeRef) -> _Doc:
    if ref.kind == schema.MODEL:
        return {"allOf": [_ref(schema.definition_name(ref.model))]}
    if ref.kind == schema.ARRAY and ref.item is not None:
        return {"type": "array", "items": _type_schema(ref.item)}
    if ref.kind == schema.MAP and ref.item is not None:
        return {"type": "object", "additionalProperties": _type_schema(ref.item)}
    if ref.kind == schema.INT_OR_STRING:
        return {"allOf": [_ref(_INT_OR_STRING)]}
    return {
        schema.STRING: {"type": "string"}, schema.INTEGER: {"type": "integer", "format": "int64"},
        schema.NUMBER: {"type": "number", "format": "double"}, schema.BOOLEAN: {"type": "boolean"},
        schema.DATETIME: {"type": "string", "format": "date-time"}, schema.BYTES: {"type": "string", "format": "byte"},
    }.get(ref.kind, {"type": "object", "x-kubernetes-preserve-unknown-fields": True})


def _gvk(rt: ResourceType) -> dict[str, str]:
    return {"group": rt.group, "version": rt.version, "kind": rt.kind}


def _borrowed_description(ref: schema.TypeRef) -> str:
    """The client drops descriptions of model-typed fields; the type's own text beats kubectl's <no description>."""
    return schema.model_schema(ref.model).description if ref.kind == schema.MODEL else ""


def _model_schema(model: str, gvk: list[dict[str, str]]) -> _Doc:
    spec = schema.model_schema(model)
    properties = {}
    for name, field in spec.fields.items():
        prop = _type_schema(field.type)
        description = field.description or _borrowed_description(field.type)
        if description:
            prop["description"] = description
        if strategy := patch_strategy(model, name):
            prop["x-kubernetes-patch-strategy"] = strategy[0]
            if strategy[1]:
                prop["x-kubernetes-patch-merge-key"] = strategy[1]
        properties[name] = prop
    doc: _Doc = {"description": spec.description, "type": "object", "properties": properties}
    required = [name for name, field in spec.fields.items() if field.required]
    if required:
        doc["required"] = required
    if gvk:
        doc["x-kubernetes-group-version-kind"] = gvk
    return doc


def _list_model(rt: ResourceType) -> str | None:
    name = f"{rt.model}List"
    return name if hasattr(kubernetes.client.models, name) else None


def _schemas(rts: list[ResourceType]) -> dict[str, _Doc]:
    kinds = {rt.model: [_gvk(rt)] for rt in rts}
    kinds.update({lst: [{**_gvk(rt), "kind": rt.list_kind}] for rt in rts if (lst := _list_model(rt))})
    if any("scale" in rt.subresources for rt in rts):
        kinds["V1Scale"] = [_SCALE_GVK]
    models = schema.reachable_models([*kinds, "V1Status"])
    docs = {schema.definition_name(m): _model_schema(m, kinds.get(m, [])) for m in models}
    docs.update(_EXTRA_SCHEMAS)
    return dict(sorted(docs.items()))


def _operation_id(verb: str, rt: ResourceType, *, scope: str, subresource: str = "") -> str:
    group = "".join(part.capitalize() for part in (rt.group.removesuffix(".k8s.io") or "core").split("."))
    return f"{verb}{group}{rt.version.capitalize()}{scope}{rt.kind}{subresource.capitalize()}"


def _response(ref: str, code: str = "200") -> _Doc:
    content = {media: {"schema": _ref(ref)} for media in ("application/json", "application/yaml")}
    return {code: {"description": "OK" if code == "200" else "Created", "content": content},
            "401": {"description": "Unauthorized"}}


def _operation(rt: ResourceType, *, action: str, verb: str, target: str, scope: str, subresource: str = "",
               gvk: dict[str, str] | None = None) -> _Doc:
    body_schema = {"schema": _ref(target)}
    op: _Doc = {
        "tags": [f"{(rt.group.removesuffix('.k8s.io') or 'core').replace('.', '')}_{rt.version}"],
        "description": f"{verb} {subresource or 'the specified'} {rt.kind}",
        "operationId": _operation_id(verb, rt, scope=scope, subresource=subresource),
        "parameters": [_PRETTY],
        "responses": _response(target),
        "x-kubernetes-action": action,
        "x-kubernetes-group-version-kind": gvk or _gvk(rt),
    }
    if action in ("post", "put"):
        op["parameters"] = [_PRETTY, _DRY_RUN, _FIELD_MANAGER, _FIELD_VALIDATION]
        op["requestBody"] = {"content": {"*/*": body_schema}, "required": True}
        if action == "post":
            op["responses"] |= _response(target, "201")
    elif action == "patch":
        op["parameters"] = [_PRETTY, _DRY_RUN, _FIELD_MANAGER, _FIELD_VALIDATION, _FORCE]
        op["requestBody"] = {"content": {media: {"schema": _ref(_PATCH)} for media in _PATCH_TYPES},
                             "required": True}
        op["responses"] |= _response(target, "201")
    elif action in ("list", "deletecollection"):
        op["parameters"] = [_PRETTY, *_LIST_PARAMS]
    elif action == "delete":
        op["parameters"] = [_PRETTY, _DRY_RUN, _query("gracePeriodSeconds", "Seconds before the object is deleted.",
                                                      "integer"), _query("propagationPolicy", "Orphan, Background "
                                                                                              "or Foreground.")]
        op["responses"] = _response(_STATUS)
    return op


def _path_params(rt: ResourceType, *, named: bool) -> list[_Doc]:
    params = []
    if named:
        params.append({"name": "name", "in": "path", "required": True, "description": f"name of the {rt.kind}",
                       "schema": {"type": "string", "uniqueItems": True}})
    if rt.namespaced:
        params.append({"name": "namespace", "in": "path", "required": True, "description": "object name and auth "
                       "scope, such as for teams and projects", "schema": {"type": "string", "uniqueItems": True}})
    return params


def _paths(rt: ResourceType) -> dict[str, _Doc]:
    root = f"/apis/{rt.group}/{rt.version}" if rt.group else f"/api/{rt.version}"
    scope = "Namespaced" if rt.namespaced else ""
    collection = f"{root}/namespaces/{{namespace}}/{rt.plural}" if rt.namespaced else f"{root}/{rt.plural}"
    kind = schema.definition_name(rt.model)
    list_kind = schema.definition_name(lst) if (lst := _list_model(rt)) else kind
    ops = functools.partial(_operation, rt, scope=scope)
    paths: dict[str, _Doc] = {
        collection: {
            "get": ops(action="list", verb="list", target=list_kind),
            "post": ops(action="post", verb="create", target=kind),
            "delete": ops(action="deletecollection", verb="deletecollection", target=_STATUS),
            "parameters": _path_params(rt, named=False),
        },
        f"{collection}/{{name}}": {
            "get": ops(action="get", verb="read", target=kind),
            "put": ops(action="put", verb="replace", target=kind),
            "patch": ops(action="patch", verb="patch", target=kind),
            "delete": ops(action="delete", verb="delete", target=kind),
            "parameters": _path_params(rt, named=True),
        },
    }
    if rt.namespaced:
        paths[f"{root}/{rt.plural}"] = {"get": ops(action="list", verb="list", target=list_kind, scope="")}
    for sub, target, gvk in (("status", kind, None), ("scale", schema.definition_name("V1Scale"), _SCALE_GVK)):
        if sub in rt.subresources:
            paths[f"{collection}/{{name}}/{sub}"] = {
                verb_key: ops(action=action, verb=verb, target=target, subresource=sub, gvk=gvk)
                for verb_key, action, verb in (("get", "get", "read"), ("put", "put", "replace"),
                                               ("patch", "patch", "patch"))
            } | {"parameters": _path_params(rt, named=True)}
    return paths


@functools.cache
def _document(group: str, version: str) -> _Doc | None:
    rts = [rt for rt in RESOURCES if (rt.group, rt.version) == (group, version)]
    if not rts:
        return None
    return {
        "openapi": "3.0.0",
        "info": {"title": "Kubernetes", "version": "unversioned"},
        "paths": {path: item for rt in rts for path, item in _paths(rt).items()},
        "components": {"schemas": _schemas(rts)},
    }


def openapi_v3_document(group: str, version: str) -> _Doc | None:
    """The OpenAPI 3.0 document of one served group/version ("" for core), None when not served."""
    return _document(group, version)


@functools.cache
def _hash(group: str, version: str) -> str:
    return hashlib.sha512(json.dumps(_document(group, version), sort_keys=True).encode()).hexdigest().upper()


def openapi_v3_index() -> _Doc:
    """Body of GET /openapi/v3: one entry per group/version, with a content hash clients cache by."""
    paths = {}
    for group, version in group_versions():
        key = f"apis/{group}/{version}" if group else f"api/{version}"
        paths[key] = {"serverRelativeURL": f"/openapi/v3/{key}?hash={_hash(group, version)}"}
    return {"paths": paths}
