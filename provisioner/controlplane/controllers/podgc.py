"""Pod garbage collection: pods nothing else will ever clean up are deleted.

Three kinds, one pass every `pod_gc_period` seconds (what is collectable is a matter of time and of the
whole pod population, not of one object's events, so the loop is periodic and level-triggered: a
single work-queue key stands for "look at everything"):

- orphans: pods bound (`spec.nodeName`) to a Node that no longer exists. No agent will ever stop them
  or report on them, so they are deleted with gracePeriodSeconds=0 and their ReplicaSets create
  replacements elsewhere. A node missing from the cache is first held in quarantine for
  `pod_gc_quarantine` seconds (the cache may simply lag behind a node that is registering) and then
  looked up on the API server itself; only a 404 there condemns its pods.
- pods stuck terminating (deletionTimestamp set) on such a node: the graceful deletion waits for an
  agent that is gone, so they are force-deleted the same way.
- terminated pods (Succeeded/Failed) beyond `terminated_pod_gc_threshold`, oldest first (0 disables),
  so finished Jobs' pods do not pile up in etcd for ever.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Collection, Iterable, Mapping
from typing import Any

from provisioner.controlplane.client import ApiStatusError, object_key, resource
from provisioner.controlplane.controllers.base import Controller, ControllerContext
from provisioner.controlplane.controllers.podstate import is_terminated, node_name_index

__all__ = ["PodGCController", "quarantined_nodes", "terminated_to_collect"]

log = logging.getLogger(__name__)

NODES = resource("nodes")
PODS = resource("pods")
REASON = "DeletionByPodGC"
_PASS = "pods"  # the one work-queue key: a whole collection pass


def terminated_to_collect(pods: Iterable[Mapping[str, Any]], *, threshold: int) -> list[Mapping[str, Any]]:
    """The terminated pods beyond `threshold`, oldest first (creation time, then namespace/name);
    none when `threshold` is 0 or less. Pods already being deleted neither count nor are chosen."""
    if threshold <= 0:
        return []
    finished = sorted(
        (p for p in pods if is_terminated(p) and not p["metadata"].get("deletionTimestamp")),
        key=lambda p: (p["metadata"].get("creationTimestamp") or "", object_key(p)),
    )
    return finished[: max(0, len(finished) - threshold)]


def quarantined_nodes(
    absent_since: Mapping[str, float], *, bound_to: Iterable[str], known: Collection[str], now: float
) -> dict[str, float]:
    """For every node some pod is bound to but the node cache lacks: since when it has been missing
    (`now` for one missing since this pass). Nodes that reappeared or lost their pods drop out."""
    return {name: absent_since.get(name, now) for name in set(bound_to) if name not in known}


class PodGCController(Controller):
    name = "podgc"

    def __init__(self, ctx: ControllerContext, *, clock: Callable[[], float] = time.monotonic) -> None:
        super().__init__(ctx)
        self.clock = clock
        self.nodes = self.informer(NODES)
        self.pods = self.informer(PODS)
        self.pods.add_indexer("node", node_name_index)
        self._absent_since: dict[str, float] = {}

    async def background(self) -> None:
        while True:
            self.queue.add(_PASS)
            await asyncio.sleep(self.ctx.settings.pod_gc_period)

    async def reconcile(self, key: str) -> None:
        await self._collect_terminated()
        await self._collect_orphans()

    async def _collect_terminated(self) -> None:
        threshold = self.ctx.settings.terminated_pod_gc_threshold
        doomed = terminated_to_collect(self.pods.list(), threshold=threshold)
        if doomed:
            log.info("deleting %d terminated pod(s) beyond the threshold of %d", len(doomed), threshold)
        for pod in doomed:
            await self.delete_same(PODS, pod, grace_period_seconds=0)

    async def _collect_orphans(self) -> None:
        now = self.clock()
        known = {node["metadata"]["name"] for node in self.nodes.list()}
        bound_to = (name for pod in self.pods.list() for name in node_name_index(pod))
        self._absent_since = quarantined_nodes(self._absent_since, bound_to=bound_to, known=known, now=now)
        quarantine = self.ctx.settings.pod_gc_quarantine
        for name, since in list(self._absent_since.items()):
            if now - since < quarantine:
                continue
            if await self._node_exists(name):
                del self._absent_since[name]  # only the cache was behind
                continue
            for pod in self.pods.by_index("node", name):
                await self._force_delete_orphan(pod, name)

    async def _node_exists(self, name: str) -> bool:
        """Ask the API server, not the cache: a node must really be gone before its pods are."""
        try:
            await self.client.get(NODES, name)
        except ApiStatusError as exc:
            if exc.not_found:
                return False
            raise
        return True

    async def _force_delete_orphan(self, pod: Mapping[str, Any], node: str) -> None:
        if not await self.delete_same(PODS, pod, grace_period_seconds=0):
            return
        terminating = "stuck terminating " if pod["metadata"].get("deletionTimestamp") else ""
        log.info("force-deleted %spod %s: node %s no longer exists", terminating, object_key(pod), node)
        message = f"PodGC: force-deleted {terminating}pod, node {node} no longer exists"
        await self.recorder.record(pod, "Normal", REASON, message)
