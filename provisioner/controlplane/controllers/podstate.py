"""Facts about a pod's state that several loops judge the same way (active, ready, available)."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

__all__ = [
    "condition",
    "is_active",
    "is_available",
    "is_ready",
    "is_terminated",
    "node_name_index",
    "now_rfc3339",
    "parse_time",
    "ready_since",
]


def now_rfc3339() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_time(value: str) -> datetime:
    """An RFC 3339 timestamp as the API server writes it (seconds or microseconds, `Z` or offset)."""
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


def condition(obj: Mapping[str, Any], type_: str) -> Mapping[str, Any] | None:
    for cond in (obj.get("status") or {}).get("conditions") or ():
        if cond.get("type") == type_:
            return dict(cond)
    return None


def is_terminated(pod: Mapping[str, Any]) -> bool:
    """Finished for good: phase Succeeded or Failed (its containers will not run again)."""
    return (pod.get("status") or {}).get("phase") in ("Succeeded", "Failed")


def is_active(pod: Mapping[str, Any]) -> bool:
    """Counts toward a workload's replicas: not terminating and not finished."""
    return not pod["metadata"].get("deletionTimestamp") and not is_terminated(pod)


def node_name_index(pod: Mapping[str, Any]) -> list[str]:
    """Informer index "node": the node a pod is bound to (none while unscheduled)."""
    node = (pod.get("spec") or {}).get("nodeName")
    return [node] if node else []


def is_ready(pod: Mapping[str, Any]) -> bool:
    ready = condition(pod, "Ready")
    return ready is not None and ready.get("status") == "True"


def ready_since(pod: Mapping[str, Any]) -> datetime | None:
    ready = condition(pod, "Ready")
    if ready is None or ready.get("status") != "True":
        return None
    stamp = ready.get("lastTransitionTime")
    return parse_time(stamp) if stamp else datetime.fromtimestamp(0, UTC)


def is_available(pod: Mapping[str, Any], *, min_ready_seconds: int, now: datetime) -> bool:
    """Ready for at least `min_ready_seconds`."""
    since = ready_since(pod)
    return since is not None and (min_ready_seconds == 0 or (now - since).total_seconds() >= min_ready_seconds)
