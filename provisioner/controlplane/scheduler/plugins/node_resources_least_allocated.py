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
        used, wanted, alloc = node.score_requested, pod.score_requests, node.allocatable
        cpu = _free_share(used.milli_cpu + wanted.milli_cpu, alloc.milli_cpu)
        memory = _free_share(used.memory + wanted.memory, alloc.memory)
        return (cpu + memory) // 2
