"""NodeAffinity (pre-filter, filter): `nodeSelector` and required node affinity (terms ORed, expressions ANDed)."""

from __future__ import annotations

from provisioner.controlplane.scheduler.framework import SUCCESS, ClusterEvent, Code, CycleState, Status, register
from provisioner.controlplane.scheduler.snapshot import NodeInfo, PodInfo, Snapshot

__all__ = ["REASON", "NodeAffinity"]

REASON = "node(s) didn't match Pod's node affinity/selector"


@register
class NodeAffinity:
    name = "NodeAffinity"
    events = frozenset({ClusterEvent.NODE_ADDED, ClusterEvent.NODE_CHANGED})

    def pre_filter(self, pod: PodInfo, snapshot: Snapshot, state: CycleState) -> Status:
        return SUCCESS if pod.node_selector.requirements or pod.node_affinity_terms else Status(Code.SKIP)

    def filter(self, pod: PodInfo, node: NodeInfo, state: CycleState) -> Status:
        if not pod.node_selector.matches(node.labels):
            return Status(Code.UNRESOLVABLE, (REASON,))
        if pod.node_affinity_terms and not any(term.matches(node) for term in pod.node_affinity_terms):
            return Status(Code.UNRESOLVABLE, (REASON,))
        return SUCCESS
