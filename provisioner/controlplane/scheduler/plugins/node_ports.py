"""NodePorts (pre-filter, filter): a pod's hostPorts must be free on the node (same protocol, overlapping IP)."""

from __future__ import annotations

from provisioner.controlplane.scheduler.framework import SUCCESS, ClusterEvent, Code, CycleState, Status, register
from provisioner.controlplane.scheduler.snapshot import NodeInfo, PodInfo, Snapshot

__all__ = ["REASON", "NodePorts"]

REASON = "node(s) didn't have free ports for the requested pod ports"
_ANY = "0.0.0.0"


def _conflicts(wanted: tuple[str, str, int], used: tuple[str, str, int]) -> bool:
    (proto, ip, port), (used_proto, used_ip, used_port) = wanted, used
    return proto == used_proto and port == used_port and (ip == used_ip or _ANY in (ip, used_ip))


@register
class NodePorts:
    name = "NodePorts"
    events = frozenset({ClusterEvent.NODE_ADDED, ClusterEvent.POD_DELETED})

    def pre_filter(self, pod: PodInfo, snapshot: Snapshot, state: CycleState) -> Status:
        return SUCCESS if pod.host_ports else Status(Code.SKIP)

    def filter(self, pod: PodInfo, node: NodeInfo, state: CycleState) -> Status:
        if any(_conflicts(w, u) for w in pod.host_ports for u in node.used_ports):
            return Status(Code.UNSCHEDULABLE, (REASON,))
        return SUCCESS
