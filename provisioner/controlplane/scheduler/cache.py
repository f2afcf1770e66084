"""The scheduler's cache: every node with the pods bound or assumed on it.

A pod is *assumed* on a node the moment a cycle picks it, before the binding lands, so the next
cycle already counts it. The informer's view of the bound pod later replaces the assumed one; a
failed binding forgets it. `snapshot()` is cheap: `NodeInfo` values are immutable, so it only copies
references.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from provisioner.controlplane.scheduler.snapshot import NodeInfo, PodInfo, Snapshot

__all__ = ["SchedulerCache"]


class SchedulerCache:
    def __init__(self) -> None:
        self._nodes: dict[str, NodeInfo] = {}
        self._pods_by_node: dict[str, dict[str, PodInfo]] = {}
        self._pod_node: dict[str, str] = {}
        self._assumed: set[str] = set()

    def snapshot(self) -> Snapshot:
        return Snapshot.of(self._nodes.values())

    def node(self, name: str) -> NodeInfo | None:
        return self._nodes.get(name)

    def set_node(self, node: Mapping[str, Any]) -> bool:
        """Add or update a node; True when something scheduling cares about changed."""
        name = node["metadata"]["name"]
        info = NodeInfo.from_node(node, self._pods_by_node.get(name, {}).values())
        old = self._nodes.get(name)
        self._nodes[name] = info
        return old is None or _scheduling_view(old) != _scheduling_view(info)

    def remove_node(self, name: str) -> None:
        self._nodes.pop(name, None)

    def is_assumed(self, key: str) -> bool:
        return key in self._assumed

    def confirm(self, key: str, node_name: str) -> bool:
        """The binding of an assumed pod landed where assumed: keep its parsed info; False if not assumed there."""
        if key not in self._assumed or self._pod_node.get(key) != node_name:
            return False
        self._assumed.discard(key)
        return True

    def assume(self, pod: PodInfo, node_name: str) -> None:
        self._place(pod, node_name)
        self._assumed.add(pod.key)

    def forget(self, key: str) -> None:
        """Undo an assumption after a failed binding; a confirmed pod stays."""
        if key in self._assumed:
            self._assumed.discard(key)
            self.remove_pod(key)

    def add_pod(self, pod: PodInfo) -> None:
        """A pod the API server reports bound: confirms an assumption or adds someone else's decision."""
        self._assumed.discard(pod.key)
        self._place(pod, pod.node_name)

    def remove_pod(self, key: str) -> None:
        self._assumed.discard(key)
        node_name = self._pod_node.pop(key, None)
        if node_name is None:
            return
        self._pods_by_node.get(node_name, {}).pop(key, None)
        if (info := self._nodes.get(node_name)) is not None:
            self._nodes[node_name] = info.without_pod(key)

    def _place(self, pod: PodInfo, node_name: str) -> None:
        if self._pod_node.get(pod.key, node_name) != node_name:
            self.remove_pod(pod.key)
        self._pod_node[pod.key] = node_name
        self._pods_by_node.setdefault(node_name, {})[pod.key] = pod
        if (info := self._nodes.get(node_name)) is not None:
            self._nodes[node_name] = info.with_pod(pod)


def _scheduling_view(info: NodeInfo) -> tuple[object, ...]:
    return (info.labels, info.unschedulable, info.taints, info.allocatable, info.images)
