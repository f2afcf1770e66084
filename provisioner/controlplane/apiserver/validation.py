"""Validation of objects before they are stored: structure from the client's models, then Kubernetes' rules.

The official Python client rejects a whole list when one item breaks its model, so nothing may be
stored that its strict models refuse: first every value is checked against the model's types and
required fields (unknown fields are collected separately, for `fieldValidation=Strict`), then the
per-kind semantics the real API server enforces (names, labels, containers, selectors, ports,
enums, quantities, immutable fields on update). Every problem is reported at once, each with its
JSON path and a message phrased like Kubernetes' own. Pure functions; `old` is the stored object
on update.
"""

from __future__ import annotations

import base64
import binascii
import functools
import json
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from provisioner.controlplane.apiserver import schema
from provisioner.controlplane.apiserver.resources import ResourceType
from provisioner.controlplane.apiserver.status import FieldError
from provisioner.controlplane.quantity import parse_quantity

__all__ = ["unknown_fields", "validate"]

REQUIRED, INVALID = "FieldValueRequired", "FieldValueInvalid"
NOT_SUPPORTED, DUPLICATE, FORBIDDEN = "FieldValueNotSupported", "FieldValueDuplicate", "FieldValueForbidden"
TYPE_INVALID = "FieldValueTypeInvalid"

_DNS_LABEL = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?")
_DNS_SUBDOMAIN = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*")
_QUALIFIED_NAME = re.compile(r"([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]")
_IANA_SVC_NAME = re.compile(r"[a-z0-9]([a-z0-9-]*[a-z0-9])?")
_CONFIG_KEY = re.compile(r"[-._a-zA-Z0-9]+")
_LABEL_MSG = ("must be no more than 63 characters; a valid label must be an empty string or consist of alphanumeric "
              "characters, '-', '_' or '.', and must start and end with an alphanumeric character")
_SUBDOMAIN_MSG = ("a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', "
                  "and must start and end with an alphanumeric character")
_LABEL_NAME_MSG = ("a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must "
                   "start and end with an alphanumeric character")
_MAX_ANNOTATIONS = 256 * 1024


def _quote(value: Any) -> str:
    return str(value) if isinstance(value, int | float) and not isinstance(value, bool) else json.dumps(value)


def required(path: str) -> FieldError:
    return FieldError(path, "Required value", REQUIRED)


def invalid(path: str, value: Any, detail: str) -> FieldError:
    return FieldError(path, f"Invalid value: {_quote(value)}: {detail}", INVALID)


def not_supported(path: str, value: Any, supported: Iterable[str]) -> FieldError:
    options = ", ".join(f'"{s}"' for s in supported)
    return FieldError(path, f"Unsupported value: {_quote(value)}: supported values: {options}", NOT_SUPPORTED)


def duplicate(path: str, value: Any) -> FieldError:
    return FieldError(path, f"Duplicate value: {_quote(value)}", DUPLICATE)


# --- structure ------------------------------------------------------------------------------------------

@dataclass
class _Walk:
    """What one pass over an object against its model found."""

    errors: list[FieldError] = field(default_factory=list)
    unknown: list[str] = field(default_factory=list)


def _join(path: str, name: str) -> str:
    return f"{path}.{name}" if path else name


_JSON_TYPES = {schema.STRING: "string", schema.INTEGER: "integer", schema.NUMBER: "number",
               schema.BOOLEAN: "boolean", schema.MODEL: "object", schema.MAP: "object", schema.ARRAY: "array",
               schema.DATETIME: "string", schema.BYTES: "string", schema.INT_OR_STRING: "integer or string"}


_ACCEPTS: dict[str, tuple[type, ...]] = {
    schema.STRING: (str,), schema.DATETIME: (str,), schema.BYTES: (str,), schema.INTEGER: (int,),
    schema.NUMBER: (int, float), schema.BOOLEAN: (bool,), schema.INT_OR_STRING: (int, str),
    schema.MODEL: (dict,), schema.MAP: (dict,), schema.ARRAY: (list,),
}


def _type_matches(value: Any, kind: str) -> bool:
    accepted = _ACCEPTS.get(kind)
    if accepted is None:
        return True
    if isinstance(value, bool):  # a bool is an int to Python, not to JSON
        return kind == schema.BOOLEAN
    return isinstance(value, accepted)


@functools.cache
def _required(model: str) -> tuple[str, ...]:
    return tuple(name for name, spec in schema.model_schema(model).fields.items() if spec.required)


def _walk(value: Any, ref: schema.TypeRef, path: str, found: _Walk) -> None:
    if value is None:
        return
    if not _type_matches(value, ref.kind):
        found.errors.append(FieldError(
            path, f"Invalid value: {type(value).__name__}: must be of type {_JSON_TYPES[ref.kind]}", TYPE_INVALID))
        return
    if ref.kind == schema.DATETIME:
        try:
            datetime.fromisoformat(value)
        except ValueError:
            found.errors.append(invalid(path, value, "must be an RFC 3339 date-time, e.g. 2006-01-02T15:04:05Z"))
    elif ref.kind == schema.BYTES:
        try:
            base64.b64decode(value, validate=True)
        except binascii.Error:
            found.errors.append(invalid(path, "<value omitted>", "must be base64-encoded"))
    elif ref.kind == schema.ARRAY and ref.item is not None:
        for index, item in enumerate(value):
            _walk(item, ref.item, f"{path}[{index}]", found)
    elif ref.kind == schema.MAP and ref.item is not None:
        for key, item in value.items():
            _walk(item, ref.item, f"{path}[{key}]", found)
    elif ref.kind == schema.MODEL:
        fields = schema.model_schema(ref.model).fields
        for name in _required(ref.model):
            if value.get(name) is None:
                found.errors.append(required(_join(path, name)))
        for name, item in value.items():
            if name in fields:
                _walk(item, fields[name].type, _join(path, name), found)
            else:
                found.unknown.append(_join(path, name))


def _structure(rt: ResourceType, obj: dict[str, Any]) -> _Walk:
    found = _Walk()
    _walk(obj, schema.TypeRef(schema.MODEL, model=rt.model), "", found)
    return found


def unknown_fields(rt: ResourceType, obj: dict[str, Any]) -> list[str]:
    """JSON paths of fields the kind's schema does not know (for `fieldValidation=Strict`/`Warn`)."""
    return _structure(rt, obj).unknown


# --- names, labels, metadata ----------------------------------------------------------------------------

def _dns_label(path: str, value: str) -> list[FieldError]:
    if len(value) <= 63 and _DNS_LABEL.fullmatch(value):
        return []
    return [invalid(path, value, f"{_LABEL_NAME_MSG} (e.g. 'my-name', or '123-abc'), at most 63 characters")]


def _dns_subdomain(path: str, value: str) -> list[FieldError]:
    if len(value) <= 253 and _DNS_SUBDOMAIN.fullmatch(value):
        return []
    return [invalid(path, value, f"{_SUBDOMAIN_MSG} (e.g. 'example.com'), at most 253 characters")]


def _path_segment(path: str, value: str) -> list[FieldError]:
    if value in (".", "..") or "/" in value or "%" in value:
        return [invalid(path, value, "may not be '.' or '..' and may not contain '/' or '%'")]
    return []


def _qualified_name(path: str, key: str) -> list[FieldError]:
    prefix, _, name = key.rpartition("/")
    errors = []
    if "/" in key and (not prefix or len(prefix) > 253 or not _DNS_SUBDOMAIN.fullmatch(prefix)):
        errors.append(invalid(path, key, f"prefix part {_SUBDOMAIN_MSG}"))
    if not name or len(name) > 63 or not _QUALIFIED_NAME.fullmatch(name):
        errors.append(invalid(path, key, "name part must consist of alphanumeric characters, '-', '_' or '.', and must "
                                         "start and end with an alphanumeric character, at most 63 characters"))
    return errors


def _labels(path: str, labels: dict[str, Any]) -> list[FieldError]:
    errors = []
    for key, value in labels.items():
        errors += _qualified_name(path, key)
        if isinstance(value, str) and value and (len(value) > 63 or not _QUALIFIED_NAME.fullmatch(value)):
            errors.append(invalid(path, value, _LABEL_MSG))
    return errors


_NameCheck = Callable[[str, str], list[FieldError]]
_NAME_RULES: dict[str, _NameCheck] = {
    "Namespace": _dns_label, "Service": _dns_label,
    **dict.fromkeys(("Role", "RoleBinding", "ClusterRole", "ClusterRoleBinding"), _path_segment),
}


def _metadata(rt: ResourceType, meta: dict[str, Any], old: dict[str, Any] | None) -> list[FieldError]:
    errors: list[FieldError] = []
    name, generate = meta.get("name"), meta.get("generateName")
    check = _NAME_RULES.get(rt.kind, _dns_subdomain)
    if name:
        errors += check("metadata.name", name)
    elif not generate:
        errors.append(FieldError("metadata.name", "Required value: name or generateName is required", REQUIRED))
    namespace = meta.get("namespace")
    if rt.namespaced and namespace:
        errors += _dns_label("metadata.namespace", namespace)
    elif not rt.namespaced and namespace:
        errors.append(FieldError("metadata.namespace", "Forbidden: not allowed on this type", FORBIDDEN))
    errors += _labels("metadata.labels", meta.get("labels") or {})
    annotations = meta.get("annotations") or {}
    for key in annotations:
        errors += _qualified_name("metadata.annotations", key)
    if sum(len(k) + len(str(v)) for k, v in annotations.items()) > _MAX_ANNOTATIONS:
        errors.append(FieldError("metadata.annotations", f"Too long: must have at most {_MAX_ANNOTATIONS} bytes",
                                 "FieldValueTooLong"))
    for index, finalizer in enumerate(meta.get("finalizers") or []):
        errors += _qualified_name(f"metadata.finalizers[{index}]", finalizer)
    if old is not None:
        old_meta = old.get("metadata") or {}
        for key in ("name", "namespace", "uid"):
            if meta.get(key) and old_meta.get(key) and meta[key] != old_meta[key]:
                errors.append(invalid(f"metadata.{key}", meta[key], "field is immutable"))
    return errors


# --- pods and templates ---------------------------------------------------------------------------------

def _enum(path: str, value: Any, allowed: tuple[str, ...]) -> list[FieldError]:
    return [] if value is None or value in allowed else [not_supported(path, value, allowed)]


def _port_number(path: str, value: Any, *, allow_zero: bool = False) -> list[FieldError]:
    low = 0 if allow_zero else 1
    if isinstance(value, int) and not low <= value <= 65535:
        return [invalid(path, value, f"must be between {low} and 65535, inclusive")]
    return []


def _quantities(path: str, values: dict[str, Any]) -> list[FieldError]:
    errors = []
    for resource, value in values.items():
        try:
            amount = parse_quantity(value)
        except ValueError as exc:
            errors.append(invalid(f"{path}[{resource}]", value, str(exc)))
            continue
        if amount < 0:
            errors.append(invalid(f"{path}[{resource}]", value, "must be greater than or equal to 0"))
    return errors


def _container(path: str, container: dict[str, Any], volumes: set[str]) -> list[FieldError]:
    errors: list[FieldError] = []
    if container.get("name"):
        errors += _dns_label(f"{path}.name", container["name"])
    if not container.get("image"):
        errors.append(required(f"{path}.image"))
    errors += _enum(f"{path}.imagePullPolicy", container.get("imagePullPolicy"), ("Always", "IfNotPresent", "Never"))
    errors += _enum(f"{path}.terminationMessagePolicy", container.get("terminationMessagePolicy"),
                    ("File", "FallbackToLogsOnError"))
    port_names: set[str] = set()
    for index, port in enumerate(container.get("ports") or []):
        port_path = f"{path}.ports[{index}]"
        errors += _port_number(f"{port_path}.containerPort", port.get("containerPort"))
        errors += _port_number(f"{port_path}.hostPort", port.get("hostPort"), allow_zero=True)
        errors += _enum(f"{port_path}.protocol", port.get("protocol"), ("TCP", "UDP", "SCTP"))
        if (port_name := port.get("name")) is not None:
            if len(port_name) > 15 or not _IANA_SVC_NAME.fullmatch(port_name):
                errors.append(invalid(f"{port_path}.name", port_name, "must be an IANA_SVC_NAME (at most 15 "
                                      "characters, lower case alphanumerics and '-')"))
            elif port_name in port_names:
                errors.append(duplicate(f"{port_path}.name", port_name))
            port_names.add(port_name)
    resources = container.get("resources") or {}
    for kind in ("limits", "requests"):
        errors += _quantities(f"{path}.resources.{kind}", resources.get(kind) or {})
    for index, mount in enumerate(container.get("volumeMounts") or []):
        if mount.get("name") and mount["name"] not in volumes:
            errors.append(FieldError(f"{path}.volumeMounts[{index}].name",
                                     f'Not found: "{mount["name"]}"', "FieldValueNotFound"))
    return errors


def _pod_spec(path: str, spec: dict[str, Any], *, restart_policies: tuple[str, ...]) -> list[FieldError]:
    errors: list[FieldError] = []
    volumes: set[str] = set()
    for index, volume in enumerate(spec.get("volumes") or []):
        if (name := volume.get("name")) is not None:
            errors += _dns_label(f"{path}.volumes[{index}].name", name)
            if name in volumes:
                errors.append(duplicate(f"{path}.volumes[{index}].name", name))
            volumes.add(name)
    if not spec.get("containers"):  # [] passes the model; a missing pod spec too
        errors.append(required(f"{path}.containers"))
    names: set[str] = set()
    for group in ("initContainers", "containers"):
        for index, container in enumerate(spec.get(group) or []):
            container_path = f"{path}.{group}[{index}]"
            errors += _container(container_path, container, volumes)
            if (name := container.get("name")) in names:
                errors.append(duplicate(f"{container_path}.name", name))
            names.add(name)
    errors += _enum(f"{path}.restartPolicy", spec.get("restartPolicy"), restart_policies)
    errors += _enum(f"{path}.dnsPolicy", spec.get("dnsPolicy"),
                    ("ClusterFirstWithHostNet", "ClusterFirst", "Default", "None"))
    for key in ("terminationGracePeriodSeconds", "activeDeadlineSeconds"):
        if isinstance(spec.get(key), int) and spec[key] < (1 if key == "activeDeadlineSeconds" else 0):
            errors.append(invalid(f"{path}.{key}", spec[key], "must be greater than or equal to "
                                  f"{1 if key == 'activeDeadlineSeconds' else 0}"))
    if spec.get("nodeName"):
        errors += _dns_subdomain(f"{path}.nodeName", spec["nodeName"])
    for index, toleration in enumerate(spec.get("tolerations") or []):
        errors += _enum(f"{path}.tolerations[{index}].operator", toleration.get("operator"), ("Exists", "Equal"))
        errors += _enum(f"{path}.tolerations[{index}].effect", toleration.get("effect") or None,
                        ("NoSchedule", "PreferNoSchedule", "NoExecute"))
    errors += _labels(f"{path}.nodeSelector", spec.get("nodeSelector") or {})
    return errors


_MUTABLE_POD_FIELDS = ("containers", "initContainers", "activeDeadlineSeconds", "tolerations", "schedulingGates")


def _pod_spec_update(spec: dict[str, Any], old_spec: dict[str, Any]) -> list[FieldError]:
    """Only images, activeDeadlineSeconds, added tolerations and removed scheduling gates may change."""
    errors = []
    for group in ("containers", "initContainers"):
        new, before = spec.get(group) or [], old_spec.get(group) or []
        strip = [{k: v for k, v in c.items() if k != "image"} for c in new]
        if len(new) != len(before) or strip != [{k: v for k, v in c.items() if k != "image"} for c in before]:
            errors.append(FieldError(f"spec.{group}", "Forbidden: pod updates may not change fields other than "
                                     "`spec.containers[*].image`, `spec.activeDeadlineSeconds`, "
                                     "`spec.tolerations` (only additions to existing tolerations)", FORBIDDEN))
    old_tolerations = old_spec.get("tolerations") or []
    if old_tolerations != (spec.get("tolerations") or [])[:len(old_tolerations)]:
        errors.append(FieldError("spec.tolerations", "Forbidden: existing toleration can not be modified except its "
                                 "tolerationSeconds", FORBIDDEN))
    if set(map(str, spec.get("schedulingGates") or [])) - set(map(str, old_spec.get("schedulingGates") or [])):
        errors.append(FieldError("spec.schedulingGates", "Forbidden: only deletion is allowed", FORBIDDEN))
    rest = {k: v for k, v in spec.items() if k not in _MUTABLE_POD_FIELDS}
    old_rest = {k: v for k, v in old_spec.items() if k not in _MUTABLE_POD_FIELDS}
    if old_rest.get("nodeName") is None:
        rest.pop("nodeName", None)
        old_rest.pop("nodeName", None)
    if rest != old_rest:
        changed = sorted(k for k in rest.keys() | old_rest.keys() if rest.get(k) != old_rest.get(k))
        errors.append(FieldError("spec", f"Forbidden: pod updates may not change fields other than `spec.containers["
                                 f"*].image`, `spec.activeDeadlineSeconds`, `spec.tolerations` (changed: "
                                 f"{', '.join(changed)})", FORBIDDEN))
    return errors


def _validate_pod(obj: dict[str, Any], old: dict[str, Any] | None) -> list[FieldError]:
    spec = obj.get("spec") or {}
    errors = _pod_spec("spec", spec, restart_policies=("Always", "OnFailure", "Never"))
    if old is not None:
        errors += _pod_spec_update(spec, old.get("spec") or {})
    return errors


# --- workloads ------------------------------------------------------------------------------------------

def _selector_matches(selector: dict[str, Any], labels: dict[str, str]) -> bool:
    if any(labels.get(k) != v for k, v in (selector.get("matchLabels") or {}).items()):
        return False
    for expr in selector.get("matchExpressions") or []:
        key, op, values = expr.get("key"), expr.get("operator"), expr.get("values") or []
        present = key in labels
        if (op == "In" and labels.get(key) not in values) or (op == "NotIn" and present and labels[key] in values):
            return False
        if (op == "Exists" and not present) or (op == "DoesNotExist" and present):
            return False
    return True


def _label_selector(path: str, selector: dict[str, Any]) -> list[FieldError]:
    errors = _labels(f"{path}.matchLabels", selector.get("matchLabels") or {})
    for index, expr in enumerate(selector.get("matchExpressions") or []):
        expr_path = f"{path}.matchExpressions[{index}]"
        op = expr.get("operator")
        errors += _enum(f"{expr_path}.operator", op, ("In", "NotIn", "Exists", "DoesNotExist"))
        if op in ("In", "NotIn") and not expr.get("values"):
            errors.append(FieldError(f"{expr_path}.values", "Required value: must be specified when `operator` "
                                     "is 'In' or 'NotIn'", REQUIRED))
        if op in ("Exists", "DoesNotExist") and expr.get("values"):
            errors.append(FieldError(f"{expr_path}.values", "Forbidden: may not be specified when `operator` is "
                                     "'Exists' or 'DoesNotExist'", FORBIDDEN))
    return errors


def _validate_workload(obj: dict[str, Any], old: dict[str, Any] | None) -> list[FieldError]:
    spec = obj.get("spec") or {}
    errors: list[FieldError] = []
    replicas = spec.get("replicas")
    if isinstance(replicas, int) and replicas < 0:
        errors.append(invalid("spec.replicas", replicas, "must be greater than or equal to 0"))
    selector = spec.get("selector")
    template = spec.get("template") or {}
    if isinstance(selector, dict):
        if not selector.get("matchLabels") and not selector.get("matchExpressions"):
            errors.append(invalid("spec.selector", selector, "empty selector is invalid for deployment"))
        errors += _label_selector("spec.selector", selector)
        labels = (template.get("metadata") or {}).get("labels") or {}
        if not _selector_matches(selector, labels):
            errors.append(invalid("spec.template.metadata.labels", labels,
                                  "`selector` does not match template `labels`"))
    errors += _labels("spec.template.metadata.labels", (template.get("metadata") or {}).get("labels") or {})
    if isinstance(template.get("spec"), dict):
        errors += _pod_spec("spec.template.spec", template["spec"], restart_policies=("Always",))
    elif "template" in spec:
        errors.append(required("spec.template.spec"))
    strategy = spec.get("strategy") or {}
    errors += _enum("spec.strategy.type", strategy.get("type"), ("Recreate", "RollingUpdate"))
    if strategy.get("type") == "Recreate" and strategy.get("rollingUpdate"):
        errors.append(FieldError("spec.strategy.rollingUpdate", "Forbidden: may not be specified when strategy "
                                 "`type` is 'Recreate'", FORBIDDEN))
    for key in ("minReadySeconds", "revisionHistoryLimit", "progressDeadlineSeconds"):
        if isinstance(spec.get(key), int) and spec[key] < 0:
            errors.append(invalid(f"spec.{key}", spec[key], "must be greater than or equal to 0"))
    if old is not None and (old.get("spec") or {}).get("selector") not in (None, selector):
        errors.append(invalid("spec.selector", selector, "field is immutable"))
    return errors


# --- services -------------------------------------------------------------------------------------------

_SERVICE_TYPES = ("ClusterIP", "NodePort", "LoadBalancer", "ExternalName")


def _validate_service(obj: dict[str, Any], old: dict[str, Any] | None) -> list[FieldError]:
    spec = obj.get("spec") or {}
    errors: list[FieldError] = []
    kind = spec.get("type") or "ClusterIP"
    errors += _enum("spec.type", spec.get("type"), _SERVICE_TYPES)
    errors += _enum("spec.sessionAffinity", spec.get("sessionAffinity"), ("ClientIP", "None"))
    ports = spec.get("ports") or []
    if not ports and kind != "ExternalName" and spec.get("clusterIP") != "None":
        errors.append(required("spec.ports"))
    if kind == "ExternalName" and not spec.get("externalName"):
        errors.append(required("spec.externalName"))
    names: set[str] = set()
    seen: set[tuple[Any, Any]] = set()
    for index, port in enumerate(ports):
        path = f"spec.ports[{index}]"
        name = port.get("name")
        if len(ports) > 1 and not name:
            errors.append(required(f"{path}.name"))
        elif name:
            errors += _dns_label(f"{path}.name", name)
            if name in names:
                errors.append(duplicate(f"{path}.name", name))
            names.add(name)
        errors += _port_number(f"{path}.port", port.get("port"))
        errors += _enum(f"{path}.protocol", port.get("protocol"), ("TCP", "UDP", "SCTP"))
        target = port.get("targetPort")
        if isinstance(target, str) and (len(target) > 15 or not _IANA_SVC_NAME.fullmatch(target)):
            errors.append(invalid(f"{path}.targetPort", target, "must be a port number or an IANA_SVC_NAME"))
        errors += _port_number(f"{path}.targetPort", target)
        errors += _port_number(f"{path}.nodePort", port.get("nodePort"), allow_zero=True)
        key = (port.get("port"), port.get("protocol") or "TCP")
        if key in seen:
            errors.append(duplicate(path, {"port": key[0], "protocol": key[1]}))
        seen.add(key)
    if old is not None:
        before = (old.get("spec") or {}).get("clusterIP")
        if before and spec.get("clusterIP") and spec["clusterIP"] != before:
            errors.append(invalid("spec.clusterIP", spec["clusterIP"], "field is immutable"))
    return errors


# --- the rest -------------------------------------------------------------------------------------------

def _validate_lease(obj: dict[str, Any], old: dict[str, Any] | None) -> list[FieldError]:
    spec = obj.get("spec") or {}
    errors = []
    if isinstance(spec.get("leaseDurationSeconds"), int) and spec["leaseDurationSeconds"] <= 0:
        errors.append(invalid("spec.leaseDurationSeconds", spec["leaseDurationSeconds"], "must be greater than 0"))
    if isinstance(spec.get("leaseTransitions"), int) and spec["leaseTransitions"] < 0:
        errors.append(invalid("spec.leaseTransitions", spec["leaseTransitions"], "must be greater than or equal to 0"))
    return errors


def _rules(obj: dict[str, Any], *, namespaced: bool) -> list[FieldError]:
    errors: list[FieldError] = []
    for index, rule in enumerate(obj.get("rules") or []):
        path = f"rules[{index}]"
        if not rule.get("verbs"):
            errors.append(required(f"{path}.verbs"))
        resources, urls = rule.get("resources"), rule.get("nonResourceURLs")
        if namespaced and urls:
            errors.append(FieldError(f"{path}.nonResourceURLs", "Invalid value: namespaced rules cannot apply to "
                                     "non-resource URLs", INVALID))
        if resources and urls:
            errors.append(FieldError(f"{path}.nonResourceURLs", "Invalid value: rules cannot apply to both regular "
                                     "resources and non-resource URLs", INVALID))
        if resources and rule.get("apiGroups") is None:
            errors.append(FieldError(f"{path}.apiGroups", "Required value: resource rules must supply at least one "
                                     "api group", REQUIRED))
        if not resources and not urls:
            errors.append(FieldError(f"{path}.resources", "Required value: resource rules must supply at least one "
                                     "resource", REQUIRED))
    return errors


def _validate_role(obj: dict[str, Any], old: dict[str, Any] | None) -> list[FieldError]:
    return _rules(obj, namespaced=True)


def _validate_cluster_role(obj: dict[str, Any], old: dict[str, Any] | None) -> list[FieldError]:
    return [] if obj.get("aggregationRule") else _rules(obj, namespaced=False)


def _binding(obj: dict[str, Any], old: dict[str, Any] | None, *, kinds: tuple[str, ...]) -> list[FieldError]:
    ref = obj.get("roleRef") or {}
    errors = _enum("roleRef.kind", ref.get("kind"), kinds)
    if ref.get("apiGroup") not in (None, "rbac.authorization.k8s.io"):
        errors.append(not_supported("roleRef.apiGroup", ref["apiGroup"], ("rbac.authorization.k8s.io",)))
    for index, subject in enumerate(obj.get("subjects") or []):
        path = f"subjects[{index}]"
        errors += _enum(f"{path}.kind", subject.get("kind"), ("ServiceAccount", "User", "Group"))
        if subject.get("kind") == "ServiceAccount" and not subject.get("namespace") and kinds == ("ClusterRole",):
            errors.append(required(f"{path}.namespace"))
    if old is not None and old.get("roleRef") and ref != old["roleRef"]:
        errors.append(invalid("roleRef", ref, "cannot change roleRef"))
    return errors


def _validate_role_binding(obj: dict[str, Any], old: dict[str, Any] | None) -> list[FieldError]:
    return _binding(obj, old, kinds=("Role", "ClusterRole"))


def _validate_cluster_role_binding(obj: dict[str, Any], old: dict[str, Any] | None) -> list[FieldError]:
    return _binding(obj, old, kinds=("ClusterRole",))


def _validate_event(obj: dict[str, Any], old: dict[str, Any] | None) -> list[FieldError]:
    involved = obj.get("involvedObject") or {}
    namespace = (obj.get("metadata") or {}).get("namespace")
    errors = _enum("type", obj.get("type"), ("Normal", "Warning"))
    if involved.get("namespace") and namespace and involved["namespace"] != namespace:
        errors.append(invalid("involvedObject.namespace", involved["namespace"], "does not match event.namespace"))
    return errors


def _data_keys(obj: dict[str, Any], old: dict[str, Any] | None, *, fields: tuple[str, ...]) -> list[FieldError]:
    errors = []
    for name in fields:
        for key in obj.get(name) or {}:
            if len(key) > 253 or not _CONFIG_KEY.fullmatch(key):
                errors.append(invalid(f"{name}[{key}]", key, "a valid config key must consist of alphanumeric "
                                      "characters, '-', '_' or '.'"))
    if old is not None and old.get("immutable"):
        for name in (*fields, "immutable"):
            if obj.get(name) != old.get(name):
                errors.append(FieldError(name, "Forbidden: field is immutable when `immutable` is set", FORBIDDEN))
    return errors


def _validate_config_map(obj: dict[str, Any], old: dict[str, Any] | None) -> list[FieldError]:
    return _data_keys(obj, old, fields=("data", "binaryData"))


def _validate_secret(obj: dict[str, Any], old: dict[str, Any] | None) -> list[FieldError]:
    errors = _data_keys(obj, old, fields=("data", "stringData"))
    if old is not None and old.get("type") and obj.get("type") != old["type"]:
        errors.append(invalid("type", obj.get("type"), "field is immutable"))
    return errors


def _validate_node(obj: dict[str, Any], old: dict[str, Any] | None) -> list[FieldError]:
    errors: list[FieldError] = []
    for index, taint in enumerate((obj.get("spec") or {}).get("taints") or []):
        errors += _qualified_name(f"spec.taints[{index}].key", taint.get("key") or "")
        errors += _enum(f"spec.taints[{index}].effect", taint.get("effect"),
                        ("NoSchedule", "PreferNoSchedule", "NoExecute"))
    status = obj.get("status") or {}
    for key in ("capacity", "allocatable"):
        errors += _quantities(f"status.{key}", status.get(key) or {})
    return errors


_Rule = Callable[[dict[str, Any], dict[str, Any] | None], list[FieldError]]
_KIND_RULES: dict[str, _Rule] = {
    "Pod": _validate_pod, "Deployment": _validate_workload, "ReplicaSet": _validate_workload,
    "Service": _validate_service, "Lease": _validate_lease, "Role": _validate_role,
    "ClusterRole": _validate_cluster_role, "RoleBinding": _validate_role_binding,
    "ClusterRoleBinding": _validate_cluster_role_binding, "Event": _validate_event,
    "ConfigMap": _validate_config_map, "Secret": _validate_secret, "Node": _validate_node,
}


def validate(rt: ResourceType, obj: dict[str, Any], *, old: dict[str, Any] | None = None) -> list[FieldError]:
    """Every offending field of `obj` (an update of `old` when given); [] when it may be stored."""
    if not isinstance(obj, dict):
        return [FieldError("", "Invalid value: must be a JSON object", TYPE_INVALID)]
    errors = _structure(rt, obj).errors
    if errors:  # semantics assume well-typed values
        return errors
    errors += _metadata(rt, obj.get("metadata") or {}, old)
    rule = _KIND_RULES.get(rt.kind)
    if rule is not None:
        errors += rule(obj, old)
    return errors
