"""NodeResourcesBalancedAllocation (score): prefer nodes whose cpu and memory use stay close after placing the pod."""

from __future__ import annotations

from provisioner.controlplane.scheduler.framework import MAX_NODE_SCORE, CycleState, register
from provisioner.controlplane.scheduler.snapshot import NodeInfo, PodInfo

__all__ = ["NodeResourcesBalancedAllocation"]


@register
class NodeResourcesBalancedAllocation:
    name = "NodeResourcesBalancedAllocation"

    def score(self, pod: PodInfo, node: NodeInfo, state: CycleState) -> int:
        used, wanted, alloc = node.score_requested, pod.score_requests, node.allocatable
        if alloc.milli_cpu <= 0 or alloc.memory <= 0:
            return 0
        cpu = min((used.milli_cpu + wanted.milli_cpu) / alloc.milli_cpu, 1.0)
        memory = min((used.memory + wanted.memory) / alloc.memory, 1.0)
        return int((1 - abs(cpu - memory)) * MAX_NODE_SCORE)
