"""TaintToleration (filter, score): NoSchedule/NoExecute taints must be tolerated; PreferNoSchedule ones cost score."""

from __future__ import annotations

from provisioner.controlplane.scheduler.framework import (
    SUCCESS,
    ClusterEvent,
    Code,
    CycleState,
    Status,
    register,
    reverse_normalize,
)
from provisioner.controlplane.scheduler.snapshot import NodeInfo, PodInfo

__all__ = ["REASON", "TaintToleration"]

REASON = "node(s) had untolerated taint {taint}"
_HARD_EFFECTS = ("NoSchedule", "NoExecute")


@register
class TaintToleration:
    name = "TaintToleration"
    events = frozenset({ClusterEvent.NODE_ADDED, ClusterEvent.NODE_CHANGED})

    def filter(self, pod: PodInfo, node: NodeInfo, state: CycleState) -> Status:
        for taint in node.taints:
            if taint.effect in _HARD_EFFECTS and not any(t.tolerates(taint) for t in pod.tolerations):
                return Status(Code.UNRESOLVABLE, (REASON.format(taint=taint),))
        return SUCCESS

    def score(self, pod: PodInfo, node: NodeInfo, state: CycleState) -> int:
        """Raw count of untolerated PreferNoSchedule taints (normalized so that fewer is better)."""
        return sum(
            1
            for taint in node.taints
            if taint.effect == "PreferNoSchedule" and not any(t.tolerates(taint) for t in pod.tolerations)
        )

    def normalize(self, pod: PodInfo, scores: dict[str, int], state: CycleState) -> None:
        reverse_normalize(scores)
