"""Rollout arithmetic of the deployment loop, as pure functions (so it can be tested on its own).

RollingUpdate: the new ReplicaSet may grow while the sum of all sets' replicas stays within
`replicas + maxSurge`; old sets may shrink while at least `replicas - maxUnavailable` pods stay
available, unhealthy (unavailable) old pods first, oldest set first. A set's identity is the hash of
its pod template (plus the collision count), which is also its `pod-template-hash` label.

Paused: no rollout step, but a change of `replicas` still applies. With one active set (or none: then
the newest set) that set becomes `replicas`. With several active sets (paused mid-rollout) the new
total `replicas + maxSurge` (the most a rollout may run at once; 0 when scaling to zero) is split over
the active sets in proportion to their current sizes, largest remainder first and newer sets first on
ties, so growth lands on the newer sets and a shrink takes from the older ones. Kubernetes estimates
each set's share from its `max-replicas` annotation instead; both keep the rollout's proportions.
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
    "paused_set_sizes",
    "pod_template_hash",
    "proportional_sizes",
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


def proportional_sizes(sizes: Sequence[tuple[str, int]], total: int) -> dict[str, int]:
    """`total` split over the sets (name, current size; oldest first, none empty) in proportion to their
    sizes: each gets the floor of its exact share, the rest go one each by largest remainder, newer first."""
    current = sum(size for _, size in sizes)
    shares = {name: size * total // current for name, size in sizes}
    remainders = sorted(
        ((size * total % current, position, name) for position, (name, size) in enumerate(sizes)), reverse=True
    )
    for _, _, name in remainders[: total - sum(shares.values())]:
        shares[name] += 1
    return shares


def paused_set_sizes(
    *, replicas: int, max_surge: int, sets: Sequence[tuple[str, int]], scaling: bool
) -> dict[str, int]:
    """Target `spec.replicas` per set of a paused deployment (see the module docstring); `sets` are
    (name, spec.replicas) oldest first with the current template's set last, `scaling` whether
    `replicas` changed since the sets were last sized. Only sets whose size must change are returned."""
    active = {name: size for name, size in sets if size > 0}
    if len(active) <= 1:
        if not sets:
            return {}
        name, size = next(iter(active.items())) if active else sets[-1]
        return {name: replicas} if size != replicas else {}
    if not scaling:
        return {}
    targets = proportional_sizes(list(active.items()), replicas + max_surge if replicas > 0 else 0)
    return {name: target for name, target in targets.items() if target != active[name]}


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
