"""WorkloadSpread (pre-score, score): spread the pods of one workload (same controller owner) across nodes."""

from __future__ import annotations

from collections.abc import Sequence

from provisioner.controlplane.scheduler.framework import (
    SUCCESS,
    Code,
    CycleState,
    Status,
    register,
    reverse_normalize,
)
from provisioner.controlplane.scheduler.snapshot import NodeInfo, PodInfo, Snapshot

__all__ = ["WorkloadSpread"]


@register
class WorkloadSpread:
    name = "WorkloadSpread"

    def pre_score(self, pod: PodInfo, snapshot: Snapshot, nodes: Sequence[NodeInfo], state: CycleState) -> Status:
        return SUCCESS if pod.owner_uid else Status(Code.SKIP)

    def score(self, pod: PodInfo, node: NodeInfo, state: CycleState) -> int:
        """Raw count of the workload's pods already on the node (normalized so that fewer is better)."""
        return sum(1 for p in node.pods if p.owner_uid == pod.owner_uid)

    def normalize(self, pod: PodInfo, scores: dict[str, int], state: CycleState) -> None:
        reverse_normalize(scores)
