"""Node lifecycle loop: a node whose heartbeat stops becomes Ready=Unknown, tainted, and its pods evicted.

A heartbeat is any change of the node's Lease in `kube-node-lease` (the agent renews it every 10 s) or
of its Ready condition's lastHeartbeatTime. The age of the last heartbeat is measured on this
process's monotonic clock from the moment the change was seen (robust to clock skew), seeded from the
Lease's renewTime when a node is first seen, so a newly elected leader does not grant every dead node
a fresh grace period. Older than the grace period: conditions go Unknown and the node gets the
`node.kubernetes.io/unreachable` taint with NoSchedule and NoExecute. Pods on a node with the NoExecute
taint are deleted once their toleration for it runs out (`tolerationSeconds` of a matching toleration;
none matching means the default eviction timeout, standing in for Kubernetes' DefaultTolerationSeconds
admission; a matching toleration without seconds means never). The taint goes when heartbeats return.
Because staleness is a matter of time, not of events, every node is re-examined each monitor period.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any

from provisioner.controlplane.client import object_key, resource
from provisioner.controlplane.controllers.base import Controller, ControllerContext
from provisioner.controlplane.controllers.podstate import condition, node_name_index, now_rfc3339, parse_time
from provisioner.controlplane.scheduler.snapshot import Taint, Toleration

__all__ = ["NODE_LEASE_NAMESPACE", "UNREACHABLE_TAINT", "NodeLifecycleController", "eviction_delay"]

log = logging.getLogger(__name__)

NODES = resource("nodes")
LEASES = resource("leases")
PODS = resource("pods")
NODE_LEASE_NAMESPACE = "kube-node-lease"
UNREACHABLE_TAINT = "node.kubernetes.io/unreachable"
_STATUS_CONDITIONS = ("Ready", "MemoryPressure", "DiskPressure", "PIDPressure")

Obj = dict[str, Any]


def eviction_delay(pod: Mapping[str, Any], taint: Taint, *, default: float) -> float | None:
    """Seconds a pod may stay on a node with `taint` (None: tolerated for ever)."""
    for raw in (pod.get("spec") or {}).get("tolerations") or ():
        toleration = Toleration(
            raw.get("key", ""), raw.get("operator", "Equal"), raw.get("value", ""), raw.get("effect", "")
        )
        if toleration.tolerates(taint):
            seconds = raw.get("tolerationSeconds")
            return None if seconds is None else max(0.0, float(seconds))
    return default


class NodeLifecycleController(Controller):
    name = "nodelifecycle"

    def __init__(self, ctx: ControllerContext, *, clock: Callable[[], float] = time.monotonic) -> None:
        super().__init__(ctx)
        self.clock = clock
        self.grace = ctx.settings.node_monitor_grace_period
        self.nodes = self.watch(NODES, self.own_key)
        self.leases = self.watch(LEASES, self._node_of_lease)
        self.pods = self.informer(PODS)
        self.pods.add_indexer("node", node_name_index)
        self._heartbeats: dict[str, tuple[tuple[str, str], float]] = {}

    @staticmethod
    def _node_of_lease(lease: Mapping[str, Any]) -> list[str]:
        meta = lease["metadata"]
        return [meta["name"]] if meta.get("namespace") == NODE_LEASE_NAMESPACE else []

    async def background(self) -> None:
        while True:
            await asyncio.sleep(self.ctx.settings.node_monitor_period)
            for node in self.nodes.list():
                self.queue.add(object_key(node))

    async def reconcile(self, key: str) -> None:
        node = self.nodes.get(key)
        if node is None:
            self._heartbeats.pop(key, None)
            return
        if self._silent_for(node) > self.grace:
            node = await self._mark_unreachable(node)
        else:
            node = await self._mark_reachable(node)
        await self._evict(node)

    def _silent_for(self, node: Mapping[str, Any]) -> float:
        """Seconds since the last heartbeat of `node` was seen."""
        name = node["metadata"]["name"]
        lease = self.leases.get(f"{NODE_LEASE_NAMESPACE}/{name}")
        ready = condition(node, "Ready") or {}
        renewed = ((lease or {}).get("spec") or {}).get("renewTime") or ""
        signature = (renewed, str(ready.get("lastHeartbeatTime") or ""))
        now = self.clock()
        seen = self._heartbeats.get(name)
        if seen is None:
            stamps = [s for s in (*signature, node["metadata"].get("creationTimestamp") or "") if s]
            age = (datetime.now(UTC) - max(parse_time(s) for s in stamps)).total_seconds() if stamps else 0.0
            seen = (signature, now - min(max(age, 0.0), self.grace + 1))
        elif seen[0] != signature:
            seen = (signature, now)
        self._heartbeats[name] = seen
        return now - seen[1]

    async def _mark_unreachable(self, node: Obj) -> Obj:
        name = node["metadata"]["name"]
        now = now_rfc3339()
        status = dict(node.get("status") or {})
        conditions = [dict(c) for c in status.get("conditions") or ()]
        if not any(c.get("type") == "Ready" for c in conditions):
            conditions.append({"type": "Ready", "lastHeartbeatTime": now})
        changed = False
        for cond in conditions:
            if cond.get("type") in _STATUS_CONDITIONS and cond.get("status") != "Unknown":
                cond.update(
                    status="Unknown",
                    reason="NodeStatusUnknown",
                    lastTransitionTime=now,
                    message="Kubelet stopped posting node status.",
                )
                changed = True
        if changed:
            node = await self.client.update(
                NODES, {**node, "status": {**status, "conditions": conditions}}, subresource="status"
            )
            await self.recorder.record(node, "Normal", "NodeNotReady", f"Node {name} status is now: NodeNotReady")
        taints = list((node.get("spec") or {}).get("taints") or ())
        missing = [
            effect
            for effect in ("NoSchedule", "NoExecute")
            if not any(t.get("key") == UNREACHABLE_TAINT and t.get("effect") == effect for t in taints)
        ]
        if missing:
            taints += [{"key": UNREACHABLE_TAINT, "effect": effect, "timeAdded": now} for effect in missing]
            node = await self.client.update(NODES, {**node, "spec": {**(node.get("spec") or {}), "taints": taints}})
            log.info("node %s unreachable: tainted %s", name, UNREACHABLE_TAINT)
        return node

    async def _mark_reachable(self, node: Obj) -> Obj:
        taints = list((node.get("spec") or {}).get("taints") or ())
        kept = [t for t in taints if t.get("key") != UNREACHABLE_TAINT]
        if len(kept) == len(taints):
            return node
        spec = {**(node.get("spec") or {}), "taints": kept}
        if not kept:
            del spec["taints"]
        node = await self.client.update(NODES, {**node, "spec": spec})
        await self.recorder.record(node, "Normal", "NodeReachable", f"Node {node['metadata']['name']} is back")
        return node

    async def _evict(self, node: Mapping[str, Any]) -> None:
        """Delete the pods whose toleration of the NoExecute taint ran out; look again at the next expiry."""
        raw = next(
            (
                t
                for t in (node.get("spec") or {}).get("taints") or ()
                if t.get("key") == UNREACHABLE_TAINT and t.get("effect") == "NoExecute"
            ),
            None,
        )
        if raw is None:
            return
        taint = Taint(UNREACHABLE_TAINT, raw.get("value", ""), "NoExecute")
        added = parse_time(raw["timeAdded"]) if raw.get("timeAdded") else datetime.now(UTC)
        elapsed = (datetime.now(UTC) - added).total_seconds()
        next_check: float | None = None
        for pod in self.pods.by_index("node", node["metadata"]["name"]):
            if pod["metadata"].get("deletionTimestamp"):
                continue
            delay = eviction_delay(pod, taint, default=self.ctx.settings.pod_eviction_timeout)
            if delay is None:
                continue
            if elapsed >= delay:
                await self._delete_pod(pod)
            else:
                next_check = min(next_check or delay - elapsed, delay - elapsed)
        if next_check is not None:
            self.queue.add_after(node["metadata"]["name"], next_check)

    async def _delete_pod(self, pod: Mapping[str, Any]) -> None:
        if not await self.delete_same(PODS, pod):
            return
        log.info("evicted pod %s from unreachable node %s", object_key(pod), pod["spec"].get("nodeName"))
        await self.recorder.record(pod, "Normal", "TaintManagerEviction", f"Marking for deletion Pod {object_key(pod)}")
