"""Pod status from what the agent observes: phase, conditions and container statuses (a pure function)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

__all__ = ["ContainerView", "pod_status"]


@dataclass(frozen=True)
class ContainerView:
    """One container as the agent sees it; `state`/`last_state` are Kubernetes ContainerState dicts."""

    name: str
    image: str
    state: Mapping[str, Any]
    restart_count: int = 0
    ready: bool = False
    started: bool = False
    container_id: str = ""
    last_state: Mapping[str, Any] = field(default_factory=dict)
    will_restart: bool = False  # a terminated container whose restartPolicy brings it back

    def as_status(self) -> dict[str, Any]:
        status: dict[str, Any] = {
            "name": self.name,
            "image": self.image,
            "imageID": "",
            "state": dict(self.state),
            "lastState": dict(self.last_state),
            "ready": self.ready,
            "started": self.started,
            "restartCount": self.restart_count,
        }
        if self.container_id:
            status["containerID"] = self.container_id
        return status


def _phase(containers: Sequence[ContainerView]) -> str:
    if not containers:
        return "Pending"
    if any("running" in c.state for c in containers):
        return "Running"
    if all("terminated" in c.state and not c.will_restart for c in containers):
        failed = any(c.state["terminated"].get("exitCode", 0) != 0 for c in containers)
        return "Failed" if failed else "Succeeded"
    ever_ran = any("terminated" in c.state or c.last_state or c.restart_count for c in containers)
    return "Running" if ever_ran else "Pending"


def _condition(type_: str, ok: bool, *, previous: Mapping[str, Mapping[str, Any]], now: str,
               reason: str = "") -> dict[str, Any]:
    status = "True" if ok else "False"
    old = previous.get(type_)
    since = old["lastTransitionTime"] if old and old.get("status") == status and old.get("lastTransitionTime") else now
    condition = {"type": type_, "status": status, "lastProbeTime": None, "lastTransitionTime": since}
    if reason and not ok:
        condition["reason"] = reason
    return condition


def pod_status(
    *,
    pod: Mapping[str, Any],
    containers: Sequence[ContainerView],
    host_ip: str,
    start_time: str,
    now: str,
) -> dict[str, Any]:
    """The whole `status` the agent owns for `pod` (host network: podIP is the node's address)."""
    previous = {c["type"]: c for c in (pod.get("status") or {}).get("conditions") or []}
    phase = _phase(containers)
    all_ready = bool(containers) and all(c.ready for c in containers) and phase == "Running"
    not_ready = "PodCompleted" if phase in ("Succeeded", "Failed") else "ContainersNotReady"
    return {
        "phase": phase,
        "conditions": [
            _condition("Initialized", True, previous=previous, now=now),
            _condition("Ready", all_ready, previous=previous, now=now, reason=not_ready),
            _condition("ContainersReady", all_ready, previous=previous, now=now, reason=not_ready),
            _condition("PodScheduled", True, previous=previous, now=now),
        ],
        "hostIP": host_ip,
        "hostIPs": [{"ip": host_ip}],
        "podIP": host_ip,
        "podIPs": [{"ip": host_ip}],
        "startTime": start_time,
        "containerStatuses": [c.as_status() for c in containers],
        "qosClass": _qos_class(pod),
    }


def _qos_class(pod: Mapping[str, Any]) -> str:
    containers = (pod.get("spec") or {}).get("containers") or []
    resources = [c.get("resources") or {} for c in containers]
    if not any(r.get("requests") or r.get("limits") for r in resources):
        return "BestEffort"
    guaranteed = all(
        {"cpu", "memory"} <= set(r.get("limits") or {})
        and all((r.get("requests") or {}).get(k, (r.get("limits") or {})[k]) == (r.get("limits") or {})[k]
                for k in ("cpu", "memory"))
        for r in resources
    )
    return "Guaranteed" if guaranteed else "Burstable"
