"""Server-side printing: `meta.k8s.io/v1` Tables with the columns `kubectl get` shows for each kind.

kubectl asks for `application/json;as=Table;v=v1;g=meta.k8s.io` and prints whatever columns come
back (columns of priority 1 only with `-o wide`), so the cells are computed here the way the real
API server's printers compute them: "1/1" readiness, pod status reasons, "80/TCP" ports, ages in
Go's `HumanDuration` form. Pure functions of the objects and a clock.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from provisioner.controlplane.apiserver.resources import ResourceType

__all__ = ["Column", "human_duration", "to_table"]

_Obj = dict[str, Any]
NONE = "<none>"


@dataclass(frozen=True)
class Column:
    """One printed column: `cell` computes its value from an object and the current time."""

    name: str
    cell: Callable[[_Obj, datetime], Any]
    type: str = "string"
    priority: int = 0  # 1: only with -o wide
    description: str = ""
    format: str = ""


def human_duration(seconds: float) -> str:
    """Go's k8s.io/apimachinery duration.HumanDuration: 45s, 5m10s, 3h, 2d4h, 1y30d."""
    if seconds < -1:
        return "<invalid>"
    if seconds < 0:
        return "0s"
    total = int(seconds)
    if total < 120:
        return f"{total}s"
    minutes, hours = total // 60, total // 3600
    if minutes < 10:
        return f"{minutes}m{total % 60}s" if total % 60 else f"{minutes}m"
    if minutes < 180:
        return f"{minutes}m"
    if hours < 8:
        return f"{hours}h{minutes % 60}m" if minutes % 60 else f"{hours}h"
    if hours < 48:
        return f"{hours}h"
    if hours < 24 * 8:
        return f"{hours // 24}d{hours % 24}h" if hours % 24 else f"{hours // 24}d"
    if hours < 24 * 365 * 2:
        return f"{hours // 24}d"
    if hours < 24 * 365 * 8:
        days = hours // 24 % 365
        return f"{hours // 24 // 365}y{days}d" if days else f"{hours // 24 // 365}y"
    return f"{hours // 24 // 365}y"


def _parse_time(value: Any) -> datetime | None:
    if not isinstance(value, str) or not value:
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _since(value: Any, now: datetime) -> str:
    when = _parse_time(value)
    return human_duration((now - when).total_seconds()) if when else "<unknown>"


def _get(obj: Any, *path: str) -> Any:
    for key in path:
        obj = obj.get(key) if isinstance(obj, dict) else None
    return obj


def _list(obj: Any, *path: str) -> list[Any]:
    value = _get(obj, *path)
    return value if isinstance(value, list) else []


def _join(values: Sequence[Any]) -> str:
    return ",".join(str(v) for v in values) or NONE


def _labels_text(labels: Any) -> list[str]:
    return [f"{k}={v}" for k, v in labels.items()] if isinstance(labels, dict) else []


def _selector(selector: Any) -> str:
    """A LabelSelector the way kubectl prints it: app=web,tier in (a,b)."""
    if not isinstance(selector, dict):
        return NONE
    parts = _labels_text(selector.get("matchLabels"))
    for expr in selector.get("matchExpressions") or []:
        values = ",".join(expr.get("values") or [])
        op = expr.get("operator")
        parts.append({"In": f"{expr.get('key')} in ({values})", "NotIn": f"{expr.get('key')} notin ({values})",
                      "Exists": str(expr.get("key")), "DoesNotExist": f"!{expr.get('key')}"}.get(op, ""))
    return ",".join(parts) or NONE


_NAME = Column("Name", lambda o, _: _get(o, "metadata", "name") or "", format="name",
               description="Name must be unique within a namespace.")
_AGE = Column("Age", lambda o, now: _since(_get(o, "metadata", "creationTimestamp"), now),
              description="CreationTimestamp is a timestamp representing the server time when this object was "
                          "created.")


# --- pods -----------------------------------------------------------------------------------------------

def _pod_ready(pod: _Obj, _: datetime) -> str:
    ready = sum(1 for s in _list(pod, "status", "containerStatuses") if isinstance(s, dict) and s.get("ready"))
    return f"{ready}/{len(_list(pod, 'spec', 'containers'))}"


def _container_reason(status: _Obj) -> str | None:
    state = status.get("state") or {}
    if (_get(state, "waiting", "reason")):
        return str(state["waiting"]["reason"])
    terminated = state.get("terminated")
    if isinstance(terminated, dict):
        if terminated.get("reason"):
            return str(terminated["reason"])
        signal = terminated.get("signal")
        return f"Signal:{signal}" if signal else f"ExitCode:{terminated.get('exitCode', 0)}"
    return None


def _pod_status(pod: _Obj, _: datetime) -> str:
    reason = _get(pod, "status", "reason") or _get(pod, "status", "phase") or "Pending"
    for index, status in enumerate(_list(pod, "status", "initContainerStatuses")):
        state = status.get("state") or {}
        if _get(state, "terminated", "exitCode") == 0:
            continue
        waiting = _get(state, "waiting", "reason")
        if waiting and waiting != "PodInitializing":
            reason = f"Init:{waiting}"
        else:
            reason = f"Init:{index}/{len(_list(pod, 'spec', 'initContainers'))}"
        break
    else:
        running = False
        for status in reversed(_list(pod, "status", "containerStatuses")):
            container_reason = _container_reason(status)
            if container_reason:
                reason = container_reason
            elif _get(status, "state", "running") is not None and status.get("ready"):
                running = True
        if reason == "Completed" and running:
            reason = "Running"
    if _get(pod, "metadata", "deletionTimestamp"):
        reason = "Unknown" if _get(pod, "status", "reason") == "NodeLost" else "Terminating"
    return str(reason)


def _pod_restarts(pod: _Obj, now: datetime) -> str:
    statuses = _list(pod, "status", "containerStatuses")
    restarts = sum(s.get("restartCount") or 0 for s in statuses)
    finished = [t for s in statuses if (t := _parse_time(_get(s, "lastState", "terminated", "finishedAt")))]
    return f"{restarts} ({human_duration((now - max(finished)).total_seconds())} ago)" if finished else str(restarts)


def _readiness_gates(pod: _Obj, _: datetime) -> str:
    gates = [g.get("conditionType") for g in _list(pod, "spec", "readinessGates")]
    if not gates:
        return NONE
    true = {c.get("type") for c in _list(pod, "status", "conditions") if c.get("status") == "True"}
    return f"{sum(1 for g in gates if g in true)}/{len(gates)}"


_POD = (
    _NAME,
    Column("Ready", _pod_ready, description="The aggregate readiness state of this pod for accepting traffic."),
    Column("Status", _pod_status, description="The aggregate status of the containers in this pod."),
    Column("Restarts", _pod_restarts, description="The number of times the containers in this pod have been "
                                                  "restarted and when the last container in this pod has restarted."),
    _AGE,
    Column("IP", lambda o, _: _get(o, "status", "podIP") or NONE, priority=1, description="IP address of the pod."),
    Column("Node", lambda o, _: _get(o, "spec", "nodeName") or NONE, priority=1,
           description="Name of the node where the pod is running."),
    Column("Nominated Node", lambda o, _: _get(o, "status", "nominatedNodeName") or NONE, priority=1,
           description="Name of the node the pod is nominated to run on."),
    Column("Readiness Gates", _readiness_gates, priority=1, description="The readiness gates of the pod."),
)


# --- nodes ----------------------------------------------------------------------------------------------

def _node_status(node: _Obj, _: datetime) -> str:
    ready = next((c.get("status") for c in _list(node, "status", "conditions") if c.get("type") == "Ready"), None)
    status = {"True": "Ready", "False": "NotReady"}.get(str(ready), "Unknown")
    return f"{status},SchedulingDisabled" if _get(node, "spec", "unschedulable") else status


def _node_roles(node: _Obj, _: datetime) -> str:
    labels = _get(node, "metadata", "labels") or {}
    roles = sorted({key.split("/", 1)[1] for key in labels if key.startswith("node-role.kubernetes.io/")}
                   | {value for key, value in labels.items() if key == "kubernetes.io/role" and value})
    return ",".join(r for r in roles if r) or NONE


def _node_address(kind: str) -> Callable[[_Obj, datetime], str]:
    return lambda node, _: _join([a.get("address") for a in _list(node, "status", "addresses")
                                  if a.get("type") == kind])


_NODE = (
    _NAME,
    Column("Status", _node_status, description="The status of the node."),
    Column("Roles", _node_roles, description="The roles of the node."),
    _AGE,
    Column("Version", lambda o, _: _get(o, "status", "nodeInfo", "kubeletVersion") or "",
           description="Kubelet version reported by the node."),
    Column("Internal-IP", _node_address("InternalIP"), priority=1, description="The node's internal IP."),
    Column("External-IP", _node_address("ExternalIP"), priority=1, description="The node's external IP."),
    Column("OS-Image", lambda o, _: _get(o, "status", "nodeInfo", "osImage") or "<unknown>", priority=1,
           description="OS image reported by the node."),
    Column("Kernel-Version", lambda o, _: _get(o, "status", "nodeInfo", "kernelVersion") or "<unknown>",
           priority=1, description="Kernel version reported by the node."),
    Column("Container-Runtime", lambda o, _: _get(o, "status", "nodeInfo", "containerRuntimeVersion") or "<unknown>",
           priority=1, description="Container runtime version reported by the node."),
)


# --- workloads ------------------------------------------------------------------------------------------

def _count(*path: str) -> Callable[[_Obj, datetime], int]:
    return lambda obj, _: int(_get(obj, *path) or 0)


def _template_column(field: str) -> Callable[[_Obj, datetime], str]:
    return lambda obj, _: _join([c.get(field) for c in _list(obj, "spec", "template", "spec", "containers")])


_WORKLOAD_WIDE = (
    Column("Containers", _template_column("name"), priority=1, description="Names of each container in the template."),
    Column("Images", _template_column("image"), priority=1, description="Images referenced by each container."),
    Column("Selector", lambda o, _: _selector(_get(o, "spec", "selector")), priority=1,
           description="Label selector for pods."),
)
_DEPLOYMENT = (
    _NAME,
    Column("Ready", lambda o, n: f"{_count('status', 'readyReplicas')(o, n)}/{_count('spec', 'replicas')(o, n)}",
           description="Number of the pod with ready state."),
    Column("Up-to-date", _count("status", "updatedReplicas"), type="integer",
           description="Total number of non-terminated pods targeted by this deployment that have the desired "
                       "template spec."),
    Column("Available", _count("status", "availableReplicas"), type="integer",
           description="Total number of available pods (ready for at least minReadySeconds)."),
    _AGE,
    *_WORKLOAD_WIDE,
)
_REPLICA_SET = (
    _NAME,
    Column("Desired", _count("spec", "replicas"), type="integer", description="Number of desired pods."),
    Column("Current", _count("status", "replicas"), type="integer", description="The most recently observed "
                                                                                 "number of replicas."),
    Column("Ready", _count("status", "readyReplicas"), type="integer", description="The number of ready replicas."),
    _AGE,
    *_WORKLOAD_WIDE,
)


# --- services, events, the rest -------------------------------------------------------------------------

def _service_external_ip(svc: _Obj, _: datetime) -> str:
    kind = _get(svc, "spec", "type") or "ClusterIP"
    external = [str(ip) for ip in _list(svc, "spec", "externalIPs")]
    if kind == "ExternalName":
        return str(_get(svc, "spec", "externalName") or NONE)
    if kind == "LoadBalancer":
        ingress = [i.get("ip") or i.get("hostname") for i in _list(svc, "status", "loadBalancer", "ingress")]
        return _join([*ingress, *external]) if ingress or external else "<pending>"
    return _join(external)


def _service_ports(svc: _Obj, _: datetime) -> str:
    ports = []
    for port in _list(svc, "spec", "ports"):
        node_port = f":{port['nodePort']}" if port.get("nodePort") else ""
        ports.append(f"{port.get('port')}{node_port}/{port.get('protocol') or 'TCP'}")
    return _join(ports)


_SERVICE = (
    _NAME,
    Column("Type", lambda o, _: _get(o, "spec", "type") or "ClusterIP", description="The type of the service."),
    Column("Cluster-IP", lambda o, _: _get(o, "spec", "clusterIP") or NONE, description="The cluster IP."),
    Column("External-IP", _service_external_ip, description="The external IP addresses of the service."),
    Column("Port(s)", _service_ports, description="The ports of the service."),
    _AGE,
    Column("Selector", lambda o, _: _join(_labels_text(_get(o, "spec", "selector"))), priority=1,
           description="Route service traffic to pods with label keys and values matching this selector."),
)


def _event_last_seen(event: _Obj, now: datetime) -> str:
    for path in (("lastTimestamp",), ("eventTime",), ("series", "lastObservedTime"), ("metadata", "creationTimestamp")):
        if _get(event, *path):
            return _since(_get(event, *path), now)
    return "<unknown>"


def _event_object(event: _Obj, _: datetime) -> str:
    involved = event.get("involvedObject") or {}
    return f"{str(involved.get('kind') or '').lower()}/{involved.get('name') or ''}"


_EVENT = (
    Column("Last Seen", _event_last_seen, description="Time since the event was last observed."),
    Column("Type", lambda o, _: o.get("type") or "", description="Type of this event (Normal, Warning)."),
    Column("Reason", lambda o, _: o.get("reason") or "", description="Short, machine understandable reason."),
    Column("Object", _event_object, description="The object this event is about."),
    Column("Message", lambda o, _: str(o.get("message") or "").strip(), description="A human-readable description."),
    Column("Subobject", lambda o, _: _get(o, "involvedObject", "fieldPath") or "", priority=1,
           description="The field of the object this event is about."),
    Column("Source", lambda o, _: ", ".join(v for v in (_get(o, "source", "component"), _get(o, "source", "host"))
                                            if v), priority=1, description="The component reporting this event."),
    Column("Count", lambda o, _: int(o.get("count") or 1), type="integer", priority=1,
           description="The number of times this event has occurred."),
    Column("Name", lambda o, _: _get(o, "metadata", "name") or "", priority=1, format="name",
           description="Name of the event."),
)
_NAMESPACE = (_NAME, Column("Status", lambda o, _: _get(o, "status", "phase") or "Active",
                            description="The status of the namespace."), _AGE)
_CONFIG_MAP = (_NAME, Column("Data", lambda o, _: len(o.get("data") or {}) + len(o.get("binaryData") or {}),
                             type="integer", description="Number of keys."), _AGE)
_SECRET = (_NAME, Column("Type", lambda o, _: o.get("type") or "Opaque", description="The type of the secret."),
           Column("Data", lambda o, _: len(o.get("data") or {}), type="integer", description="Number of keys."), _AGE)
_LEASE = (_NAME, Column("Holder", lambda o, _: _get(o, "spec", "holderIdentity") or "",
                        description="The holder of the lease."), _AGE)
_BINDING = (_NAME, Column("Role", lambda o, _: f"{_get(o, 'roleRef', 'kind')}/{_get(o, 'roleRef', 'name')}",
                          description="The role this binding grants."), _AGE)

_COLUMNS: dict[str, tuple[Column, ...]] = {
    "Pod": _POD, "Node": _NODE, "Deployment": _DEPLOYMENT, "ReplicaSet": _REPLICA_SET, "Service": _SERVICE,
    "Event": _EVENT, "Namespace": _NAMESPACE, "ConfigMap": _CONFIG_MAP, "Secret": _SECRET, "Lease": _LEASE,
    "RoleBinding": _BINDING, "ClusterRoleBinding": _BINDING,
}


def _row(obj: _Obj, columns: tuple[Column, ...], *, include_object: str, now: datetime) -> _Obj:
    row: _Obj = {"cells": [c.cell(obj, now) for c in columns]}
    if include_object == "Object":
        row["object"] = obj
    elif include_object == "Metadata":
        row["object"] = {"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1",
                         "metadata": obj.get("metadata") or {}}
    return row


def to_table(rt: ResourceType, objects: list[_Obj], *, include_object: str = "Metadata",
             now: datetime | None = None) -> _Obj:
    """A meta.k8s.io/v1 Table of `objects`; the caller fills `metadata` (resourceVersion, continue).

    `include_object` is the request's `includeObject` (None, Metadata or Object); `now` is for tests.
    """
    now = now or datetime.now(UTC)
    columns = _COLUMNS.get(rt.kind, (_NAME, _AGE))
    return {
        "kind": "Table",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": {},
        "columnDefinitions": [
            {"name": c.name, "type": c.type, "format": c.format, "description": c.description, "priority": c.priority}
            for c in columns
        ],
        "rows": [_row(obj, columns, include_object=include_object, now=now) for obj in objects],
    }
