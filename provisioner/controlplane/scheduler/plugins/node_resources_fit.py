"""NodeResourcesFit (filter): requested cpu, memory and pod count must fit allocatable; names every short one."""

from __future__ import annotations

from provisioner.controlplane.scheduler.framework import SUCCESS, ClusterEvent, Code, CycleState, Status, register
from provisioner.controlplane.scheduler.snapshot import NodeInfo, PodInfo

__all__ = ["INSUFFICIENT_CPU", "INSUFFICIENT_MEMORY", "TOO_MANY_PODS", "NodeResourcesFit"]

TOO_MANY_PODS = "Too many pods"
INSUFFICIENT_CPU = "Insufficient cpu"
INSUFFICIENT_MEMORY = "Insufficient memory"


@register
class NodeResourcesFit:
    name = "NodeResourcesFit"
    events = frozenset({ClusterEvent.NODE_ADDED, ClusterEvent.NODE_CHANGED, ClusterEvent.POD_DELETED})

    def filter(self, pod: PodInfo, node: NodeInfo, state: CycleState) -> Status:
        want, used, free = pod.requests, node.requested, node.allocatable
        reasons = []
        if used.pods + 1 > free.pods:
            reasons.append(TOO_MANY_PODS)
        if want.milli_cpu and used.milli_cpu + want.milli_cpu > free.milli_cpu:
            reasons.append(INSUFFICIENT_CPU)
        if want.memory and used.memory + want.memory > free.memory:
            reasons.append(INSUFFICIENT_MEMORY)
        return Status(Code.UNSCHEDULABLE, tuple(reasons)) if reasons else SUCCESS
