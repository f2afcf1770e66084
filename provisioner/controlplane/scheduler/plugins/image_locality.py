"""ImageLocality (score): prefer nodes that already ran the pod's images (the agent reports them in status.images)."""

from __future__ import annotations

from provisioner.controlplane.scheduler.framework import MAX_NODE_SCORE, CycleState, register
from provisioner.controlplane.scheduler.snapshot import NodeInfo, PodInfo

__all__ = ["ImageLocality"]


@register
class ImageLocality:
    name = "ImageLocality"

    def score(self, pod: PodInfo, node: NodeInfo, state: CycleState) -> int:
        if not pod.images:
            return 0
        return MAX_NODE_SCORE * sum(1 for image in pod.images if image in node.images) // len(pod.images)
