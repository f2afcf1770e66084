"""The scheduling loop: informers in, one pod per cycle against a snapshot, concurrent bindings out."""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

import aiohttp

from provisioner.controlplane.apiserver.status import ApiError
from provisioner.controlplane.client import (
    ApiClient,
    ApiStatusError,
    EventRecorder,
    InformerFactory,
    object_key,
    resource,
)
from provisioner.controlplane.scheduler import plugins as _plugins  # noqa: F401  (registers the built-ins)
from provisioner.controlplane.scheduler.cache import SchedulerCache
from provisioner.controlplane.scheduler.framework import ClusterEvent, FitError, Framework, Profile
from provisioner.controlplane.scheduler.queue import SchedulingQueue
from provisioner.controlplane.scheduler.snapshot import PodInfo

__all__ = ["DEFAULT_PROFILE", "DEFAULT_SCHEDULER_NAME", "Scheduler"]

log = logging.getLogger(__name__)

DEFAULT_SCHEDULER_NAME = "default-scheduler"
DEFAULT_PROFILE = Profile(
    filters=(
        "NodeUnschedulable",
        "NodeAffinity",
        "TaintToleration",
        "NodePorts",
        "NodeResourcesFit",
        "InterPodAffinity",
    ),
    scores=(
        ("TaintToleration", 3),
        ("ImageLocality", 1),
        ("NodeResourcesLeastAllocated", 1),
        ("NodeResourcesBalancedAllocation", 1),
        ("WorkloadSpread", 2),
    ),
    # Python pays ~20x Go's cost per node, so stop at 10% of a big cluster (never under 100 nodes), the
    # share Kubernetes' adaptive default reaches only at 5,000 nodes; round-robin still covers every node.
    percentage_of_nodes_to_score=10,
)
PODS, NODES = resource("pods"), resource("nodes")
_API_ERRORS = (ApiStatusError, aiohttp.ClientError, OSError, TimeoutError)


def _pending(pod: Mapping[str, Any]) -> bool:
    return not (pod.get("spec") or {}).get("nodeName") and not pod["metadata"].get("deletionTimestamp")


def _terminal(pod: Mapping[str, Any]) -> bool:
    return (pod.get("status") or {}).get("phase") in ("Succeeded", "Failed")


def _spec_view(pod: Mapping[str, Any]) -> tuple[object, ...]:
    meta = pod["metadata"]
    return (pod.get("spec"), meta.get("labels"), meta.get("annotations"), meta.get("deletionTimestamp"))


class Scheduler:
    """Schedules pods whose `spec.schedulerName` is `scheduler_name`; `run()` until cancelled."""

    def __init__(
        self,
        client: ApiClient,
        *,
        factory: InformerFactory | None = None,
        profile: Profile = DEFAULT_PROFILE,
        scheduler_name: str = DEFAULT_SCHEDULER_NAME,
        bind_concurrency: int = 64,
        rng: random.Random | None = None,
    ) -> None:
        self.client = client
        self.scheduler_name = scheduler_name
        self.framework = Framework(profile, rng or random.Random())
        self.cache = SchedulerCache()
        self.queue = SchedulingQueue()
        self.events = EventRecorder(client, component=scheduler_name)
        self.factory = factory or InformerFactory(client)
        self.pods = self.factory.informer(PODS)
        self.nodes = self.factory.informer(NODES)
        self._binds = asyncio.Semaphore(bind_concurrency)
        self.pods.add_handler(on_add=self._pod_added, on_update=self._pod_updated, on_delete=self._pod_deleted)
        self.nodes.add_handler(on_add=self._node_added, on_update=self._node_updated, on_delete=self._node_deleted)

    # -- informer handlers: only bookkeeping and enqueueing ----------------------------------------
    def _ours(self, pod: Mapping[str, Any]) -> bool:
        return (pod.get("spec") or {}).get("schedulerName", DEFAULT_SCHEDULER_NAME) == self.scheduler_name

    def _pod_added(self, pod: dict[str, Any]) -> None:
        if not _pending(pod):
            if pod["spec"].get("nodeName") and not _terminal(pod):
                self._cache_bound(pod)
                self.queue.move(ClusterEvent.POD_ADDED)
            return
        if self._ours(pod):
            self.queue.add(object_key(pod))

    def _pod_updated(self, old: dict[str, Any], new: dict[str, Any]) -> None:
        if _pending(new):
            if self._ours(new) and _spec_view(old) != _spec_view(new):
                self._pod_added(new)
            return
        self.queue.remove(object_key(new))
        if _terminal(new) or not new["spec"].get("nodeName"):
            self._pod_deleted(new)
        elif _pending(old) or _spec_view(old) != _spec_view(new):
            self._cache_bound(new)

    def _pod_deleted(self, pod: dict[str, Any]) -> None:
        key = object_key(pod)
        self.queue.remove(key)
        if (pod.get("spec") or {}).get("nodeName") or self.cache.is_assumed(key):
            self.cache.remove_pod(key)
            self.queue.move(ClusterEvent.POD_DELETED)

    def _cache_bound(self, pod: dict[str, Any]) -> None:
        if self.cache.confirm(object_key(pod), pod["spec"]["nodeName"]):
            return  # our own binding landed: the assumed info is already counted
        try:
            self.cache.add_pod(PodInfo.from_pod(pod))
        except (ApiError, ValueError, KeyError, ArithmeticError) as exc:
            log.warning("bound pod %s/%s not understood: %s", pod["metadata"].get("namespace"),
                        pod["metadata"]["name"], exc)

    def _node_added(self, node: dict[str, Any]) -> None:
        self.cache.set_node(node)
        self.queue.move(ClusterEvent.NODE_ADDED)

    def _node_updated(self, old: dict[str, Any], new: dict[str, Any]) -> None:
        if self.cache.set_node(new):
            self.queue.move(ClusterEvent.NODE_CHANGED)

    def _node_deleted(self, node: dict[str, Any]) -> None:
        self.cache.remove_node(node["metadata"]["name"])

    # -- the loop ----------------------------------------------------------------------------------
    async def run(self) -> None:
        """Informers, the parked-pod flush and the scheduling cycles, as root tasks of one group."""
        try:
            async with asyncio.TaskGroup() as group:
                group.create_task(self.factory.run(), name="informers")
                group.create_task(self.queue.flush_forever(), name="unschedulable-flush")
                await self.factory.wait_for_sync()
                log.info("%s: caches synced, scheduling", self.scheduler_name)
                while (key := await self.queue.pop()) is not None:
                    try:
                        self.schedule_one(key, group)
                    finally:
                        self.queue.done(key)
                    await asyncio.sleep(0)  # a backlog must not starve the bindings and informers

        finally:
            self.queue.shutdown()

    def schedule_one(self, key: str, group: asyncio.TaskGroup) -> None:
        """One cycle: pick a node for `key`, assume it, and start the binding (or report no fit)."""
        pod = self.pods.get(key)
        if pod is None or not _pending(pod) or not self._ours(pod) or self.cache.is_assumed(key):
            return
        try:
            info = PodInfo.from_pod(pod)
        except ApiError as exc:  # a malformed selector: no retry fixes it, the next edit re-queues the pod
            group.create_task(self._report_unschedulable(pod, f"invalid pod spec: {exc.message}"))
            return
        try:
            node_name = self.framework.schedule(info, self.cache.snapshot())
        except FitError as fit:
            self.queue.park(key, self.framework.requeue_events(fit))
            log.info("%s: %s", key, fit.message)
            group.create_task(self._report_unschedulable(pod, fit.message))
            return
        self.cache.assume(info, node_name)
        group.create_task(self._bind(info, node_name))

    async def _bind(self, pod: PodInfo, node_name: str) -> None:
        async with self._binds:
            try:
                await self.client.bind(namespace=pod.namespace, pod_name=pod.name, node_name=node_name)
            except _API_ERRORS as exc:
                self.cache.forget(pod.key)
                if isinstance(exc, ApiStatusError) and exc.code in (404, 409):
                    log.info("%s: binding to %s not needed: %s", pod.key, node_name, exc)
                    return
                log.warning("%s: binding to %s failed: %s", pod.key, node_name, exc)
                self.queue.backoff(pod.key)
                return
        self.queue.scheduled(pod.key)
        log.debug("%s bound to %s", pod.key, node_name)

    async def _report_unschedulable(self, pod: Mapping[str, Any], message: str) -> None:
        """PodScheduled=False/Unschedulable on the pod (only when it changed) and a FailedScheduling Event."""
        meta = pod["metadata"]
        conditions = list((pod.get("status") or {}).get("conditions") or [])
        current = next((c for c in conditions if c.get("type") == "PodScheduled"), None)
        if current is None or (current.get("status"), current.get("message")) != ("False", message):
            condition = {
                "type": "PodScheduled",
                "status": "False",
                "reason": "Unschedulable",
                "message": message,
                "lastProbeTime": None,
                "lastTransitionTime": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
            }
            conditions = [c for c in conditions if c.get("type") != "PodScheduled"] + [condition]
            try:
                await self.client.patch(PODS, meta["name"], {"status": {"conditions": conditions}},
                                        namespace=meta.get("namespace"), subresource="status")
            except _API_ERRORS as exc:
                log.warning("%s/%s: condition not written: %s", meta.get("namespace"), meta["name"], exc)
        await self.events.record(pod, "Warning", "FailedScheduling", message)
