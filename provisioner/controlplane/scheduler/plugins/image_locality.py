"""ImageLocality (pre-score, score): prefer nodes that already hold the pod's big images, as Kubernetes does.

Each image on a node counts with its size scaled by the share of the scored nodes holding it (an image
everywhere gives no node an edge; Kubernetes counts all nodes, the scored ones are cheaper here). The
sum is mapped onto 0..100 between 23 MB and 1000 MB per container, so small images never outweigh
spreading. The process agent reports the images of pods it ran with size 0 (nothing is pulled here),
so on its nodes this plugin stays neutral, while nodes reporting real sizes attract their pods.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence

from provisioner.controlplane.scheduler.framework import MAX_NODE_SCORE, SUCCESS, Code, CycleState, Status, register
from provisioner.controlplane.scheduler.snapshot import NodeInfo, PodInfo, Snapshot

__all__ = ["MAX_CONTAINER_THRESHOLD", "MIN_THRESHOLD", "ImageLocality"]

MIN_THRESHOLD = 23 * 1024 * 1024
MAX_CONTAINER_THRESHOLD = 1000 * 1024 * 1024
_STATE_KEY = "ImageLocality/spread"


@register
class ImageLocality:
    name = "ImageLocality"

    def pre_score(self, pod: PodInfo, snapshot: Snapshot, nodes: Sequence[NodeInfo], state: CycleState) -> Status:
        if not pod.images:
            return Status(Code.SKIP)
        holders = Counter(image for node in nodes for image in pod.images if node.images.get(image))
        if not holders:  # nobody holds a sized copy: every node would score 0
            return Status(Code.SKIP)
        state.write(_STATE_KEY, {image: holders[image] / len(nodes) for image in pod.images})
        return SUCCESS

    def score(self, pod: PodInfo, node: NodeInfo, state: CycleState) -> int:
        spread: dict[str, float] = state.read(_STATE_KEY)
        total = sum(node.images[image] * spread[image] for image in pod.images if image in node.images)
        ceiling = MAX_CONTAINER_THRESHOLD * len(pod.images)
        clamped = min(max(total, MIN_THRESHOLD), ceiling)
        return int((clamped - MIN_THRESHOLD) * MAX_NODE_SCORE / (ceiling - MIN_THRESHOLD))
