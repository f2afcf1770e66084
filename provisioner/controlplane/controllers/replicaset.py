"""ReplicaSet loop: keep `spec.replicas` active pods that match the selector and are controlled by the set.

Pods are named `<rs>-<5 random chars>` and carry a controlling ownerReference. Orphans that match are
adopted, controlled pods that stopped matching are released. Creations and deletions are remembered as
expectations, so a reconcile never acts on a cache that has not yet seen our previous writes.
Surplus pods are deleted unscheduled first, then pending, not ready, recently ready, often
restarted, and newest.
"""

from __future__ import annotations

import asyncio
import copy
import logging
import random
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from provisioner.controlplane.apiserver.selectors import label_selector_from_dict
from provisioner.controlplane.client import ApiStatusError, object_key, resource
from provisioner.controlplane.controllers.base import Controller, ControllerContext
from provisioner.controlplane.controllers.expectations import Expectations
from provisioner.controlplane.controllers.ownership import claim, controller_ref, owner_reference
from provisioner.controlplane.controllers.podstate import is_active, is_available, is_ready, ready_since

__all__ = ["ReplicaSetController", "deletion_rank", "pod_name"]

log = logging.getLogger(__name__)

PODS = resource("pods")
REPLICASETS = resource("replicasets")
_NAME_ALPHABET = "bcdfghjklmnpqrstvwxz2456789"
_PHASE_ORDER = {"Pending": 0, "Unknown": 1, "Running": 2}


def pod_name(owner_name: str) -> str:
    return f"{owner_name}-{''.join(random.choices(_NAME_ALPHABET, k=5))}"


def deletion_rank(pod: Mapping[str, Any]) -> tuple[Any, ...]:
    """Sort key: pods that should go first when scaling down sort first."""
    status = pod.get("status") or {}
    since = ready_since(pod)
    restarts = sum(int(c.get("restartCount") or 0) for c in status.get("containerStatuses") or ())
    return (
        bool((pod.get("spec") or {}).get("nodeName")),
        _PHASE_ORDER.get(status.get("phase", "Pending"), 0),
        is_ready(pod),
        -(since.timestamp() if since else 0.0),
        -restarts,
        _negated(pod["metadata"].get("creationTimestamp", "")),
    )


def _negated(stamp: str) -> tuple[int, ...]:
    """Newer timestamps sort first (RFC 3339 strings compare like times)."""
    return tuple(-ord(ch) for ch in stamp)


class ReplicaSetController(Controller):
    name = "replicaset"

    def __init__(self, ctx: ControllerContext) -> None:
        super().__init__(ctx)
        self.expectations = Expectations()
        self.sets = self.watch(REPLICASETS, self.own_key)
        self.pods = self.informer(PODS)
        self.pods.add_handler(on_add=self._pod_added, on_update=self._pod_updated, on_delete=self._pod_deleted)

    # -- routing pod events to their set -------------------------------------------------------
    def _owners(self, pod: Mapping[str, Any]) -> list[str]:
        namespace = pod["metadata"].get("namespace", "")
        ref = controller_ref(pod)
        if ref is not None:
            return [f"{namespace}/{ref['name']}"] if ref.get("kind") == "ReplicaSet" else []
        labels = pod["metadata"].get("labels") or {}
        return [
            object_key(rs)
            for rs in self.sets.by_index("namespace", namespace)
            if label_selector_from_dict(rs["spec"].get("selector")).matches(labels)
        ]

    def _pod_added(self, pod: dict[str, Any]) -> None:
        if pod["metadata"].get("deletionTimestamp"):
            self.expectations.observed_delete(object_key(pod))
        else:
            self.expectations.observed_add(object_key(pod))
        for key in self._owners(pod):
            self.queue.add(key)

    def _pod_updated(self, old: dict[str, Any], new: dict[str, Any]) -> None:
        if new["metadata"].get("deletionTimestamp") and not old["metadata"].get("deletionTimestamp"):
            self.expectations.observed_delete(object_key(new))
        for key in {*self._owners(old), *self._owners(new)}:
            self.queue.add(key)

    def _pod_deleted(self, pod: dict[str, Any]) -> None:
        self.expectations.observed_delete(object_key(pod))
        for key in self._owners(pod):
            self.queue.add(key)

    # -- reconcile -----------------------------------------------------------------------------
    async def reconcile(self, key: str) -> None:
        rs = self.sets.get(key)
        if rs is None:
            self.expectations.forget(key)
            return
        namespace = rs["metadata"]["namespace"]
        selector = label_selector_from_dict(rs["spec"].get("selector"))
        owned = await claim(
            self.client, PODS, owner=rs, selector=selector, candidates=self.pods.by_index("namespace", namespace)
        )
        active = [pod for pod in owned if is_active(pod)]
        if self.expectations.satisfied(key) and not rs["metadata"].get("deletionTimestamp"):
            diff = len(active) - int(rs["spec"].get("replicas", 1))
            if diff < 0:
                await self._create_pods(rs, -diff)
            elif diff > 0:
                await self._delete_pods(rs, sorted(active, key=deletion_rank)[:diff])
        await self._update_status(rs, active)

    async def _create_pods(self, rs: Mapping[str, Any], count: int) -> None:
        """Create in doubling batches (1, 2, 4...) so a failing template costs one request, not many."""
        key = object_key(rs)
        batch = 1
        while count > 0:
            pods = [self._new_pod(rs) for _ in range(min(batch, count))]
            self.expectations.expect_adds(key, [object_key(p) for p in pods])
            results = await asyncio.gather(*(self.client.create(PODS, p) for p in pods), return_exceptions=True)
            failures = [(p, r) for p, r in zip(pods, results, strict=True) if isinstance(r, BaseException)]
            for pod, _ in failures:
                self.expectations.observed_add(object_key(pod))
            created = len(pods) - len(failures)
            if created:
                await self.recorder.record(
                    rs,
                    "Normal",
                    "SuccessfulCreate",
                    f"Created {created} pod(s): "
                    + ", ".join(
                        p["metadata"]["name"]
                        for p, r in zip(pods, results, strict=True)
                        if not isinstance(r, BaseException)
                    ),
                )
            if failures:
                error = failures[0][1]
                await self.recorder.record(rs, "Warning", "FailedCreate", f"Error creating: {error}")
                raise error
            count -= len(pods)
            batch *= 2

    def _new_pod(self, rs: Mapping[str, Any]) -> dict[str, Any]:
        template = rs["spec"].get("template") or {}
        tmeta = template.get("metadata") or {}
        meta: dict[str, Any] = {
            "name": pod_name(rs["metadata"]["name"]),
            "namespace": rs["metadata"]["namespace"],
            "labels": dict(tmeta.get("labels") or {}),
            "ownerReferences": [owner_reference(rs)],
        }
        if tmeta.get("annotations"):
            meta["annotations"] = dict(tmeta["annotations"])
        return {"apiVersion": "v1", "kind": "Pod", "metadata": meta, "spec": copy.deepcopy(template.get("spec") or {})}

    async def _delete_pods(self, rs: Mapping[str, Any], pods: list[Mapping[str, Any]]) -> None:
        key = object_key(rs)
        self.expectations.expect_deletes(key, [object_key(p) for p in pods])
        results = await asyncio.gather(
            *(
                self.client.delete(
                    PODS,
                    p["metadata"]["name"],
                    namespace=p["metadata"]["namespace"],
                    preconditions={"uid": p["metadata"]["uid"]},
                )
                for p in pods
            ),
            return_exceptions=True,
        )
        for pod, result in zip(pods, results, strict=True):
            if isinstance(result, ApiStatusError) and result.not_found:
                continue
            if isinstance(result, BaseException):
                self.expectations.observed_delete(object_key(pod))
                await self.recorder.record(rs, "Warning", "FailedDelete", f"Error deleting: {result}")
                raise result
            await self.recorder.record(rs, "Normal", "SuccessfulDelete", f"Deleted pod: {pod['metadata']['name']}")

    async def _update_status(self, rs: Mapping[str, Any], active: list[Mapping[str, Any]]) -> None:
        min_ready = int(rs["spec"].get("minReadySeconds") or 0)
        now = datetime.now(UTC)
        template_labels = ((rs["spec"].get("template") or {}).get("metadata") or {}).get("labels") or {}
        ready = [p for p in active if is_ready(p)]
        available = [p for p in ready if is_available(p, min_ready_seconds=min_ready, now=now)]
        old = rs.get("status") or {}
        status = {
            **old,
            "replicas": len(active),
            "fullyLabeledReplicas": sum(
                1 for p in active if template_labels.items() <= (p["metadata"].get("labels") or {}).items()
            ),
            "readyReplicas": len(ready),
            "availableReplicas": len(available),
            "observedGeneration": rs["metadata"].get("generation", 0),
        }
        if len(available) < len(ready):
            self.queue.add_after(object_key(rs), float(min_ready))
        if status != old:
            await self.client.update(REPLICASETS, {**rs, "status": status}, subresource="status")
