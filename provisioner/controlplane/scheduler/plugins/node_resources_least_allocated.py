"""NodeResourcesLeastAllocated (score): prefer nodes with the most cpu and memory left after placing the pod."""

from __future__ import annotations

from provisioner.controlplane.scheduler.framework import MAX_NODE_SCORE, CycleState, register
from provisioner.controlplane.scheduler.snapshot import NodeInfo, PodInfo

__all__ = ["NodeResourcesLeastAllocated"]


def _free_share(requested: int, allocatable: int) -> int:
    if allocatable <= 0 or requested > allocatable:
        return 0
    return (allocatable - requested) * MAX_NODE_SCORE // allocatable


@register
class NodeResourcesLeastAllocated:
    name = "NodeResourcesLeastAllocated"

    def score(self, pod: PodInfo, node: NodeInfo, state: CycleState) -> int:
        after = node.score_requested + pod.score_requests
        cpu = _free_share(after.milli_cpu, node.allocatable.milli_cpu)
        memory = _free_share(after.memory, node.allocatable.memory)
        return (cpu + memory) // 2
