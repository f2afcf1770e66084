"""Rollout arithmetic of the deployment loop, as pure functions (so it can be tested on its own).

RollingUpdate: the new ReplicaSet may grow while the sum of all sets' replicas stays within
`replicas + maxSurge`; old sets may shrink while at least `replicas - maxUnavailable` pods stay
available, unhealthy (unavailable) old pods first, oldest set first. A set's identity is the hash of
its pod template (plus the collision count), which is also its `pod-template-hash` label.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

__all__ = [
    "HASH_LABEL",
    "REVISION_ANNOTATION",
    "SetView",
    "new_set_replicas",
    "old_set_scale_downs",
    "pod_template_hash",
    "resolve_int_or_percent",
    "surge_and_unavailable",
    "templates_equal",
]

HASH_LABEL = "pod-template-hash"
REVISION_ANNOTATION = "deployment.kubernetes.io/revision"
_HASH_ALPHABET = "bcdfghjklmnpqrstvwxz2456789"


@dataclass(frozen=True)
class SetView:
    """What the rollout math needs to know about one old ReplicaSet."""

    name: str
    replicas: int  # spec.replicas
    available: int  # status.availableReplicas


def resolve_int_or_percent(value: int | str | None, total: int, *, round_up: bool, default: str = "25%") -> int:
    """An IntOrString like `1` or `"25%"` against `total`."""
    value = default if value is None else value
    if isinstance(value, int):
        return value
    text = str(value)
    if not text.endswith("%"):
        return int(text)
    exact = int(text[:-1]) * total / 100
    return math.ceil(exact) if round_up else math.floor(exact)


def surge_and_unavailable(rolling_update: Mapping[str, Any] | None, replicas: int) -> tuple[int, int]:
    """(maxSurge, maxUnavailable) as pod counts; both zero would deadlock, so unavailable becomes 1."""
    rolling_update = rolling_update or {}
    surge = resolve_int_or_percent(rolling_update.get("maxSurge"), replicas, round_up=True)
    unavailable = resolve_int_or_percent(rolling_update.get("maxUnavailable"), replicas, round_up=False)
    if surge == 0 and unavailable == 0:
        unavailable = 1
    return surge, min(unavailable, replicas)


def new_set_replicas(*, replicas: int, max_surge: int, new: int, total: int) -> int:
    """Target size of the new set given the current sum of all sets' `spec.replicas` (`total`)."""
    if new >= replicas:
        return replicas
    room = replicas + max_surge - total
    return new + max(0, min(room, replicas - new))


def old_set_scale_downs(
    *, replicas: int, max_unavailable: int, new_replicas: int, new_available: int, olds: Sequence[SetView]
) -> dict[str, int]:
    """New `spec.replicas` for the old sets (oldest first in `olds`) that may shrink now."""
    targets = {o.name: o.replicas for o in olds}
    old_total = sum(targets.values())
    if old_total == 0:
        return {}
    min_available = replicas - max_unavailable
    budget = old_total + new_replicas - min_available - (new_replicas - new_available)
    if budget <= 0:
        return {}
    for o in olds:  # unavailable pods of old sets cost no availability: remove them first
        unhealthy = o.replicas - o.available
        if budget <= 0:
            break
        if unhealthy > 0:
            cut = min(budget, unhealthy)
            targets[o.name] -= cut
            budget -= cut
    to_cut = sum(o.available for o in olds) + new_available - min_available
    for o in olds:
        if to_cut <= 0:
            break
        cut = min(targets[o.name], to_cut)
        targets[o.name] -= cut
        to_cut -= cut
    return {o.name: targets[o.name] for o in olds if targets[o.name] != o.replicas}


def _pruned(value: Any) -> Any:
    """`value` without null, empty-map and empty-list fields: Go clients (kubectl rollout undo) send
    `"creationTimestamp": null` and `"resources": {}` that mean the same as absent fields."""
    if isinstance(value, Mapping):
        pruned = {k: _pruned(v) for k, v in value.items()}
        return {k: v for k, v in pruned.items() if v is not None and v != {} and v != []}
    if isinstance(value, list):
        return [_pruned(v) for v in value]
    return value


def _without_hash(template: Mapping[str, Any]) -> dict[str, Any]:
    plain: dict[str, Any] = _pruned(template)
    labels = (plain.get("metadata") or {}).get("labels")
    if labels:
        labels.pop(HASH_LABEL, None)
    return plain


def templates_equal(a: Mapping[str, Any], b: Mapping[str, Any]) -> bool:
    """Pod templates equal apart from the pod-template-hash label."""
    return _without_hash(a) == _without_hash(b)


def pod_template_hash(template: Mapping[str, Any], collision_count: int = 0) -> str:
    """A short, label-safe, stable hash of the template (without its hash label) and the collision count."""
    canonical = json.dumps([_without_hash(template), collision_count], sort_keys=True, separators=(",", ":"))
    number = int.from_bytes(hashlib.sha256(canonical.encode()).digest()[:4], "big")
    return "".join(_HASH_ALPHABET[int(d)] for d in str(number))
