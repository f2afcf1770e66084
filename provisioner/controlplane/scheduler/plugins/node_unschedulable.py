"""NodeUnschedulable (filter): cordoned nodes take only pods that tolerate the unschedulable taint."""

from __future__ import annotations

from provisioner.controlplane.scheduler.framework import SUCCESS, ClusterEvent, Code, CycleState, Status, register
from provisioner.controlplane.scheduler.snapshot import NodeInfo, PodInfo, Taint

__all__ = ["REASON", "NodeUnschedulable"]

REASON = "node(s) were unschedulable"
_UNSCHEDULABLE_TAINT = Taint("node.kubernetes.io/unschedulable", "", "NoSchedule")


@register
class NodeUnschedulable:
    name = "NodeUnschedulable"
    events = frozenset({ClusterEvent.NODE_ADDED, ClusterEvent.NODE_CHANGED})

    def filter(self, pod: PodInfo, node: NodeInfo, state: CycleState) -> Status:
        if node.unschedulable and not any(t.tolerates(_UNSCHEDULABLE_TAINT) for t in pod.tolerations):
            return Status(Code.UNRESOLVABLE, (REASON,))
        return SUCCESS
