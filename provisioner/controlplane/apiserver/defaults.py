"""Defaulting: the fields the real API server fills in before an object is validated and stored.

Clients (kubectl diff/apply, controllers, the agent) read back what Kubernetes would have stored, so
the same defaults are filled here: pod and container defaults (also inside Deployment and ReplicaSet
templates), workload rollout defaults, service defaults, namespace finalizers and phases, secret
types. A few server-side conversions belong here too: numeric quantities become strings (the
client's models type them as strings) and `Secret.stringData` is folded into `data`.

Defaulting runs before validation, so it tolerates malformed input: a value of the wrong type is
left alone for `validate` to report. Everything mutates the given dict in place.

Cluster IPs are allocated by the HTTP layer, not here: it asks `service_needs_cluster_ip`, sets
`spec.clusterIP`, and `apply_defaults` then mirrors it into `spec.clusterIPs`.
"""

from __future__ import annotations

import base64
from collections.abc import Callable
from typing import Any

from provisioner.controlplane.apiserver.resources import ResourceType

__all__ = ["apply_defaults", "pod_qos_class", "service_needs_cluster_ip"]

_Obj = dict[str, Any]


def _child(parent: Any, key: str, default: Any = None) -> Any:
    """parent[key] when parent is a dict, created from `default` if missing; None if it cannot be."""
    if not isinstance(parent, dict):
        return None
    if parent.get(key) is None and default is not None:
        parent[key] = default
    return parent.get(key)


def _items(parent: Any, key: str) -> list[_Obj]:
    """The dict elements of a list field (others are left for validation)."""
    value = _child(parent, key)
    return [item for item in value if isinstance(item, dict)] if isinstance(value, list) else []


def _set(parent: Any, **values: Any) -> None:
    if isinstance(parent, dict):
        for key, value in values.items():
            parent.setdefault(key, value)


# --- quantities -----------------------------------------------------------------------------------------

def _quantity_strings(values: Any) -> None:
    """Numbers written as YAML numbers (`cpu: 1`) are stored as quantity strings, as Kubernetes does."""
    if isinstance(values, dict):
        for key, value in values.items():
            if isinstance(value, int | float) and not isinstance(value, bool):
                values[key] = str(value)


# --- pods -----------------------------------------------------------------------------------------------

def _image_pull_policy(image: Any) -> str:
    if not isinstance(image, str):
        return "IfNotPresent"
    name = image.split("@", 1)[0]
    tag = name.rsplit(":", 1)[1] if ":" in name.rsplit("/", 1)[-1] else ""
    return "Always" if "@" not in image and tag in ("", "latest") else "IfNotPresent"


def _probe(probe: Any) -> None:
    _set(probe, timeoutSeconds=1, periodSeconds=10, successThreshold=1, failureThreshold=3)
    _set(_child(probe, "httpGet"), path="/", scheme="HTTP")


def _container(container: _Obj) -> None:
    _set(container, terminationMessagePath="/dev/termination-log", terminationMessagePolicy="File",
         imagePullPolicy=_image_pull_policy(container.get("image")))
    resources = _child(container, "resources", {})
    if isinstance(resources, dict):
        for kind in ("limits", "requests"):
            _quantity_strings(resources.get(kind))
        limits = resources.get("limits")
        if isinstance(limits, dict) and limits:
            requests = _child(resources, "requests", {})
            _set(requests, **limits)
    for port in _items(container, "ports"):
        _set(port, protocol="TCP")
    for env in _items(container, "env"):
        _set(_child(_child(env, "valueFrom"), "fieldRef"), apiVersion="v1")
    for probe in ("livenessProbe", "readinessProbe", "startupProbe"):
        _probe(_child(container, probe))


_MODE_VOLUMES = ("secret", "configMap", "downwardAPI", "projected")


def _pod_spec(spec: Any) -> None:
    if not isinstance(spec, dict):
        return
    _set(spec, restartPolicy="Always", dnsPolicy="ClusterFirst", schedulerName="default-scheduler",
         terminationGracePeriodSeconds=30, securityContext={}, enableServiceLinks=True)
    for group in ("initContainers", "containers"):
        for container in _items(spec, group):
            _container(container)
    for volume in _items(spec, "volumes"):
        for source in _MODE_VOLUMES:
            _set(_child(volume, source), defaultMode=420)


def pod_qos_class(spec: _Obj) -> str:
    """Guaranteed, Burstable or BestEffort, from the (defaulted) containers' requests and limits."""
    containers = [c for group in ("initContainers", "containers") for c in _items(spec, group)]
    resources = [c.get("resources") if isinstance(c.get("resources"), dict) else {} for c in containers]
    if not any(r.get("requests") or r.get("limits") for r in resources):
        return "BestEffort"
    guaranteed = all(
        all(name in (r.get("limits") or {}) for name in ("cpu", "memory"))
        and (r.get("requests") or {}) == (r.get("limits") or {})
        for r in resources
    )
    return "Guaranteed" if guaranteed else "Burstable"


def _pod(obj: _Obj) -> None:
    spec = _child(obj, "spec")
    _pod_spec(spec)
    if isinstance(spec, dict):
        _set(spec, priority=0, preemptionPolicy="PreemptLowerPriority")
        status = _child(obj, "status", {})
        _set(status, phase="Pending", qosClass=pod_qos_class(spec))


def _template(spec: Any) -> None:
    _pod_spec(_child(_child(spec, "template"), "spec"))


# --- workloads ------------------------------------------------------------------------------------------

def _deployment(obj: _Obj) -> None:
    spec = _child(obj, "spec")
    _set(spec, replicas=1, revisionHistoryLimit=10, progressDeadlineSeconds=600)
    strategy = _child(spec, "strategy", {"type": "RollingUpdate"})
    _set(strategy, type="RollingUpdate")
    if isinstance(strategy, dict) and strategy.get("type") == "RollingUpdate":
        _set(_child(strategy, "rollingUpdate", {}), maxUnavailable="25%", maxSurge="25%")
    _template(spec)


def _replica_set(obj: _Obj) -> None:
    spec = _child(obj, "spec")
    _set(spec, replicas=1)
    _template(spec)


# --- services and friends -------------------------------------------------------------------------------

def service_needs_cluster_ip(obj: _Obj) -> bool:
    """Whether the HTTP layer must allocate `spec.clusterIP` (before calling `apply_defaults`)."""
    spec = obj.get("spec")
    return isinstance(spec, dict) and spec.get("type") != "ExternalName" and not spec.get("clusterIP")


def _service(obj: _Obj) -> None:
    spec = _child(obj, "spec")
    if not isinstance(spec, dict):
        return
    _set(spec, type="ClusterIP", sessionAffinity="None")
    kind = spec["type"]
    for port in _items(spec, "ports"):
        _set(port, protocol="TCP")
        if port.get("port") is not None:
            _set(port, targetPort=port["port"])
    if kind != "ExternalName":
        _set(spec, internalTrafficPolicy="Cluster")
        if spec.get("clusterIP"):
            _set(spec, clusterIPs=[spec["clusterIP"]])
        if spec.get("clusterIP") and spec["clusterIP"] != "None":
            family = "IPv6" if ":" in spec["clusterIP"] else "IPv4"
            _set(spec, ipFamilies=[family], ipFamilyPolicy="SingleStack")
    if kind in ("NodePort", "LoadBalancer"):
        _set(spec, externalTrafficPolicy="Cluster")
    if kind == "LoadBalancer":
        _set(spec, allocateLoadBalancerNodePorts=True)
    _set(_child(obj, "status", {}), loadBalancer={})


def _endpoints(obj: _Obj) -> None:
    for subset in _items(obj, "subsets"):
        for port in _items(subset, "ports"):
            _set(port, protocol="TCP")


def _namespace(obj: _Obj) -> None:
    _set(_child(obj, "spec", {}), finalizers=["kubernetes"])
    _set(_child(obj, "status", {}), phase="Active")


def _secret(obj: _Obj) -> None:
    _set(obj, type="Opaque")
    string_data = obj.get("stringData")
    if isinstance(string_data, dict) and all(isinstance(v, str) for v in string_data.values()):
        data = _child(obj, "data", {})
        if isinstance(data, dict):  # otherwise both stay for validation to report
            data.update({key: base64.b64encode(value.encode()).decode() for key, value in string_data.items()})
            del obj["stringData"]


def _node(obj: _Obj) -> None:
    status = _child(obj, "status")
    for key in ("capacity", "allocatable"):
        _quantity_strings(_child(status, key))


def _subjects(obj: _Obj) -> None:
    for subject in _items(obj, "subjects"):
        if subject.get("kind") in ("User", "Group"):
            _set(subject, apiGroup="rbac.authorization.k8s.io")
        elif subject.get("kind") == "ServiceAccount":
            _set(subject, apiGroup="")


_DEFAULTERS: dict[str, Callable[[_Obj], None]] = {
    "Pod": _pod, "Deployment": _deployment, "ReplicaSet": _replica_set, "Service": _service,
    "Endpoints": _endpoints, "Namespace": _namespace, "Secret": _secret, "Node": _node,
    "RoleBinding": _subjects, "ClusterRoleBinding": _subjects,
}


def apply_defaults(rt: ResourceType, obj: _Obj) -> None:
    """Fill Kubernetes' defaults for `rt`'s kind into `obj`, in place; fields already set are kept."""
    defaulter = _DEFAULTERS.get(rt.kind)
    if defaulter is not None and isinstance(obj, dict):
        defaulter(obj)
