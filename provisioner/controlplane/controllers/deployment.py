"""Deployment loop: one ReplicaSet per pod template (`<deploy>-<pod-template-hash>`), rolled per strategy.

The set whose template equals the deployment's (ignoring the hash label) is the new set; all others are
old. RollingUpdate grows the new set and shrinks old ones within maxSurge/maxUnavailable (see
`rollout`); Recreate scales old sets to zero, waits until their pods are gone, then scales the new set
up. A rollback (`kubectl rollout undo`) puts an old template back, so that old set becomes the new set
again and gets the next revision. Every write to a set is a compare-and-swap PUT, so a stale cache
costs a 409 and a retry, never a wrong scale. Status and the Available/Progressing conditions are what
`kubectl rollout status` and `kubectl wait --for=condition=Available` read.

A paused deployment (`kubectl rollout pause`) makes no rollout step and creates no set for a changed
template, but still follows changes of `replicas` (`rollout.paused_set_sizes`); its Progressing
condition is Unknown/DeploymentPaused until `kubectl rollout resume` (then DeploymentResumed, until
the rollout's own reasons take over), as in Kubernetes.
"""

from __future__ import annotations

import copy
import logging
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from provisioner.controlplane.apiserver.selectors import label_selector_from_dict
from provisioner.controlplane.client import ApiStatusError, object_key, resource
from provisioner.controlplane.controllers.base import Controller, ControllerContext
from provisioner.controlplane.controllers.ownership import claim, controller_ref, controller_uid_index, owner_reference
from provisioner.controlplane.controllers.podstate import is_terminated, now_rfc3339, parse_time
from provisioner.controlplane.controllers.rollout import (
    HASH_LABEL,
    REVISION_ANNOTATION,
    SetView,
    new_set_replicas,
    old_set_scale_downs,
    paused_set_sizes,
    pod_template_hash,
    surge_and_unavailable,
    templates_equal,
)

__all__ = ["DeploymentController"]

log = logging.getLogger(__name__)

DEPLOYMENTS = resource("deployments")
REPLICASETS = resource("replicasets")
PODS = resource("pods")
DESIRED_ANNOTATION = "deployment.kubernetes.io/desired-replicas"
MAX_ANNOTATION = "deployment.kubernetes.io/max-replicas"
DEFAULT_HISTORY_LIMIT = 10
DEFAULT_PROGRESS_DEADLINE = 600
_PROGRESS_UP = ("updatedReplicas", "readyReplicas", "availableReplicas")

Obj = dict[str, Any]


def _revision(rs: Mapping[str, Any]) -> int:
    try:
        return int((rs["metadata"].get("annotations") or {}).get(REVISION_ANNOTATION, "0"))
    except ValueError:
        return 0


def _replicas(obj: Mapping[str, Any]) -> int:
    return int(obj["spec"].get("replicas", 1))


def _annotated(obj: Mapping[str, Any], updates: Mapping[str, str]) -> Obj:
    """A shallow copy of `obj` with `updates` merged into its annotations (the cached object stays intact)."""
    annotations = {**(obj["metadata"].get("annotations") or {}), **updates}
    return {**obj, "metadata": {**obj["metadata"], "annotations": annotations}}


def _stat(rs: Mapping[str, Any], field: str) -> int:
    return int((rs.get("status") or {}).get(field) or 0)


class DeploymentController(Controller):
    name = "deployment"

    def __init__(self, ctx: ControllerContext) -> None:
        super().__init__(ctx)
        self.deployments = self.watch(DEPLOYMENTS, self.own_key)
        self.sets = self.watch(REPLICASETS, self._owners_of_set)
        self.pods = self.informer(PODS)
        self.pods.add_indexer("controller-uid", controller_uid_index)
        self.pods.add_handler(on_delete=self._pod_deleted)

    def _owners_of_set(self, rs: Mapping[str, Any]) -> list[str]:
        namespace = rs["metadata"].get("namespace", "")
        ref = controller_ref(rs)
        if ref is not None:
            return [f"{namespace}/{ref['name']}"] if ref.get("kind") == "Deployment" else []
        labels = rs["metadata"].get("labels") or {}
        return [
            object_key(d)
            for d in self.deployments.by_index("namespace", namespace)
            if label_selector_from_dict(d["spec"].get("selector")).matches(labels)
        ]

    def _pod_deleted(self, pod: dict[str, Any]) -> None:
        """Recreate waits for old pods to be gone: a pod's deletion wakes its set's deployment."""
        ref = controller_ref(pod)
        if ref is None or ref.get("kind") != "ReplicaSet":
            return
        rs = self.sets.get(f"{pod['metadata'].get('namespace', '')}/{ref['name']}")
        if rs is not None:
            for key in self._owners_of_set(rs):
                self.queue.add(key)

    # -- reconcile -----------------------------------------------------------------------------
    async def reconcile(self, key: str) -> None:
        d = self.deployments.get(key)
        if d is None:
            return
        selector = label_selector_from_dict(d["spec"].get("selector"))
        sets = await claim(
            self.client,
            REPLICASETS,
            owner=d,
            selector=selector,
            candidates=self.sets.by_index("namespace", d["metadata"]["namespace"]),
        )
        new = next(
            (
                rs
                for rs in sorted(sets, key=lambda s: s["metadata"].get("creationTimestamp", ""))
                if templates_equal(rs["spec"].get("template") or {}, d["spec"].get("template") or {})
            ),
            None,
        )
        olds = sorted((rs for rs in sets if rs is not new), key=lambda s: s["metadata"].get("creationTimestamp", ""))
        if d["metadata"].get("deletionTimestamp"):
            await self._update_status(d, new, olds, created=False)
            return
        if d["spec"].get("paused"):
            new, olds = await self._scale_paused(d, new, olds)
            await self._update_status(d, new, olds, created=False)
            return
        strategy = d["spec"].get("strategy") or {}
        created = False
        if strategy.get("type") == "Recreate":
            new, created = await self._recreate(d, new, olds)
        else:
            new, created = await self._rolling_update(d, new, olds)
        if new is not None:
            d = await self._sync_revision(d, new, olds)
            if self._complete(d, new, olds):
                await self._cleanup(d, olds)
        await self._update_status(d, new, olds, created=created)

    async def _rolling_update(self, d: Obj, new: Obj | None, olds: list[Obj]) -> tuple[Obj | None, bool]:
        replicas = _replicas(d)
        surge, unavailable = surge_and_unavailable((d["spec"].get("strategy") or {}).get("rollingUpdate"), replicas)
        total = sum(_replicas(rs) for rs in olds) + (_replicas(new) if new is not None else 0)
        target = new_set_replicas(replicas=replicas, max_surge=surge, new=_replicas(new) if new else 0, total=total)
        created = new is None
        if new is None:
            new = await self._create_set(d, olds, target)
        elif target != _replicas(new):
            new = await self._scale(d, new, target)
            return new, False
        downs = old_set_scale_downs(
            replicas=replicas,
            max_unavailable=unavailable,
            new_replicas=_replicas(new),
            new_available=_stat(new, "availableReplicas"),
            olds=[SetView(rs["metadata"]["name"], _replicas(rs), _stat(rs, "availableReplicas")) for rs in olds],
        )
        for i, rs in enumerate(olds):
            if rs["metadata"]["name"] in downs:
                olds[i] = await self._scale(d, rs, downs[rs["metadata"]["name"]])
        return new, created

    async def _recreate(self, d: Obj, new: Obj | None, olds: list[Obj]) -> tuple[Obj | None, bool]:
        scaled = False
        for i, rs in enumerate(olds):
            if _replicas(rs) > 0:
                olds[i] = await self._scale(d, rs, 0)
                scaled = True
        old_pods = [
            p
            for rs in olds
            for p in self.pods.by_index("controller-uid", rs["metadata"]["uid"])
            if not is_terminated(p)
        ]
        if scaled or old_pods:
            return new, False
        if new is None:
            return await self._create_set(d, olds, _replicas(d)), True
        if _replicas(new) != _replicas(d):
            new = await self._scale(d, new, _replicas(d))
        return new, False

    async def _scale_paused(self, d: Obj, new: Obj | None, olds: list[Obj]) -> tuple[Obj | None, list[Obj]]:
        """No rollout while paused, only replica changes: the sets resized by `paused_set_sizes`."""
        replicas = _replicas(d)
        strategy = d["spec"].get("strategy") or {}
        surge = 0
        if strategy.get("type") != "Recreate":
            surge, _ = surge_and_unavailable(strategy.get("rollingUpdate"), replicas)
        sets = [*olds, *([new] if new is not None else [])]
        scaling = any(
            (rs["metadata"].get("annotations") or {}).get(DESIRED_ANNOTATION) != str(replicas)
            for rs in sets
            if _replicas(rs) > 0
        )
        targets = paused_set_sizes(
            replicas=replicas,
            max_surge=surge,
            sets=[(rs["metadata"]["name"], _replicas(rs)) for rs in sets],
            scaling=scaling,
        )
        scaled = [
            await self._scale(d, rs, targets[name]) if (name := rs["metadata"]["name"]) in targets else rs
            for rs in sets
        ]
        return (scaled[-1], scaled[:-1]) if new is not None else (None, scaled)

    # -- writes --------------------------------------------------------------------------------
    async def _create_set(self, d: Obj, olds: list[Obj], replicas: int) -> Obj:
        collisions = int((d.get("status") or {}).get("collisionCount") or 0)
        template = copy.deepcopy(d["spec"].get("template") or {})
        hash_ = pod_template_hash(template, collisions)
        template.setdefault("metadata", {}).setdefault("labels", {})[HASH_LABEL] = hash_
        selector = copy.deepcopy(d["spec"].get("selector") or {})
        selector.setdefault("matchLabels", {})[HASH_LABEL] = hash_
        name = f"{d['metadata']['name']}-{hash_}"
        surge, _ = surge_and_unavailable((d["spec"].get("strategy") or {}).get("rollingUpdate"), _replicas(d))
        rs = {
            "apiVersion": "apps/v1",
            "kind": "ReplicaSet",
            "metadata": {
                "name": name,
                "namespace": d["metadata"]["namespace"],
                "labels": dict(template["metadata"]["labels"]),
                "annotations": {
                    REVISION_ANNOTATION: str(max((_revision(o) for o in olds), default=0) + 1),
                    DESIRED_ANNOTATION: str(_replicas(d)),
                    MAX_ANNOTATION: str(_replicas(d) + surge),
                },
                "ownerReferences": [owner_reference(d)],
            },
            "spec": {
                "replicas": replicas,
                "minReadySeconds": int(d["spec"].get("minReadySeconds") or 0),
                "selector": selector,
                "template": template,
            },
        }
        try:
            created = await self.client.create(REPLICASETS, rs)
        except ApiStatusError as exc:
            if exc.code != 409:
                raise
            await self._collided(d, name)
            raise
        await self.recorder.record(d, "Normal", "ScalingReplicaSet", f"Scaled up replica set {name} to {replicas}")
        return created

    async def _collided(self, d: Obj, name: str) -> None:
        """A set of that name exists but is not ours with this template: bump collisionCount (new hash)."""
        live = await self.client.get(REPLICASETS, name, namespace=d["metadata"]["namespace"])
        ref = controller_ref(live)
        if (
            ref is not None
            and ref.get("uid") == d["metadata"]["uid"]
            and templates_equal(live["spec"].get("template") or {}, d["spec"].get("template") or {})
        ):
            return  # our own set, the cache had not seen it yet
        status = dict(d.get("status") or {})
        status["collisionCount"] = int(status.get("collisionCount") or 0) + 1
        await self.client.update(DEPLOYMENTS, {**d, "status": status}, subresource="status")

    async def _scale(self, d: Obj, rs: Obj, replicas: int) -> Obj:
        surge, _ = surge_and_unavailable((d["spec"].get("strategy") or {}).get("rollingUpdate"), _replicas(d))
        before = _replicas(rs)
        annotated = _annotated(rs, {DESIRED_ANNOTATION: str(_replicas(d)), MAX_ANNOTATION: str(_replicas(d) + surge)})
        updated = await self.client.update(REPLICASETS, {**annotated, "spec": {**rs["spec"], "replicas": replicas}})
        direction = "up" if replicas > before else "down"
        message = f"Scaled {direction} replica set {rs['metadata']['name']} from {before} to {replicas}"
        await self.recorder.record(d, "Normal", "ScalingReplicaSet", message)
        return updated

    async def _sync_revision(self, d: Obj, new: Obj, olds: list[Obj]) -> Obj:
        """The new set carries the highest revision (a rollback bumps it); the deployment mirrors it."""
        revision = _revision(new)
        highest_old = max((_revision(o) for o in olds), default=0)
        if revision <= highest_old:
            revision = highest_old + 1
            await self.client.update(REPLICASETS, _annotated(new, {REVISION_ANNOTATION: str(revision)}))
        if (d["metadata"].get("annotations") or {}).get(REVISION_ANNOTATION) != str(revision):
            return await self.client.update(DEPLOYMENTS, _annotated(d, {REVISION_ANNOTATION: str(revision)}))
        return d

    async def _cleanup(self, d: Obj, olds: list[Obj]) -> None:
        """Delete the oldest empty old sets beyond `revisionHistoryLimit`."""
        limit = int(d["spec"].get("revisionHistoryLimit", DEFAULT_HISTORY_LIMIT))
        cleanable = sorted((rs for rs in olds if not rs["metadata"].get("deletionTimestamp")), key=_revision)
        for rs in cleanable[: max(0, len(cleanable) - limit)]:
            if _replicas(rs) or _stat(rs, "replicas"):
                continue
            try:
                await self.client.delete(
                    REPLICASETS,
                    rs["metadata"]["name"],
                    namespace=rs["metadata"]["namespace"],
                    preconditions={"uid": rs["metadata"]["uid"]},
                )
            except ApiStatusError as exc:
                if not exc.not_found:
                    raise

    # -- status --------------------------------------------------------------------------------
    @staticmethod
    def _complete(d: Obj, new: Obj, olds: list[Obj]) -> bool:
        replicas = _replicas(d)
        total = sum(_stat(rs, "replicas") for rs in [new, *olds])
        available = sum(_stat(rs, "availableReplicas") for rs in [new, *olds])
        return (
            _stat(new, "replicas") == replicas
            and total == replicas
            and available == replicas
            and all(_replicas(rs) == 0 for rs in olds)
        )

    async def _update_status(self, d: Obj, new: Obj | None, olds: list[Obj], *, created: bool) -> None:
        sets = [*olds, *([new] if new is not None else [])]
        replicas = _replicas(d)
        _, unavailable = surge_and_unavailable((d["spec"].get("strategy") or {}).get("rollingUpdate"), replicas)
        if (d["spec"].get("strategy") or {}).get("type") == "Recreate":
            unavailable = 0
        available = sum(_stat(rs, "availableReplicas") for rs in sets)
        old = d.get("status") or {}
        status: Obj = {
            "observedGeneration": d["metadata"].get("generation", 0),
            "replicas": sum(_stat(rs, "replicas") for rs in sets),
            "updatedReplicas": _stat(new, "replicas") if new is not None else 0,
            "readyReplicas": sum(_stat(rs, "readyReplicas") for rs in sets),
            "availableReplicas": available,
            "unavailableReplicas": max(0, sum(_replicas(rs) for rs in sets) - available),
        }
        if "collisionCount" in old:
            status["collisionCount"] = old["collisionCount"]
        conditions = {c["type"]: c for c in old.get("conditions") or ()}
        if available >= replicas - unavailable:
            _set_condition(
                conditions, "Available", "True", "MinimumReplicasAvailable", "Deployment has minimum availability."
            )
        else:
            _set_condition(
                conditions,
                "Available",
                "False",
                "MinimumReplicasUnavailable",
                "Deployment does not have minimum availability.",
            )
        progressing = (conditions.get("Progressing") or {}).get("reason")
        if d["spec"].get("paused"):
            if progressing != "ProgressDeadlineExceeded":  # a reported failure is not hidden by a pause
                _set_condition(conditions, "Progressing", "Unknown", "DeploymentPaused", "Deployment is paused")
        else:
            if progressing == "DeploymentPaused":
                _set_condition(conditions, "Progressing", "Unknown", "DeploymentResumed", "Deployment is resumed")
            if new is not None:
                self._set_progressing(d, new, olds, conditions, created=created, progressed=_progressed(old, status))
        status["conditions"] = [conditions[t] for t in ("Available", "Progressing") if t in conditions]
        if status != old:
            await self.client.update(DEPLOYMENTS, {**d, "status": status}, subresource="status")

    def _set_progressing(
        self, d: Obj, new: Obj, olds: list[Obj], conditions: dict[str, Obj], *, created: bool, progressed: bool
    ) -> None:
        """Progressing: complete, just created, moving (refreshed on every step), or stuck past its deadline."""
        name = new["metadata"]["name"]
        if self._complete(d, new, olds):
            _set_condition(
                conditions,
                "Progressing",
                "True",
                "NewReplicaSetAvailable",
                f'ReplicaSet "{name}" has successfully progressed.',
            )
            return
        if created:
            _set_condition(
                conditions, "Progressing", "True", "NewReplicaSetCreated", f'Created new replica set "{name}"'
            )
            return
        current = conditions.get("Progressing") or {}
        waiting = ("NewReplicaSetCreated", "ReplicaSetUpdated", "ProgressDeadlineExceeded")
        if not progressed and current.get("reason") in waiting and current.get("lastUpdateTime"):
            if current["reason"] == "ProgressDeadlineExceeded":
                return
            deadline = float(d["spec"].get("progressDeadlineSeconds", DEFAULT_PROGRESS_DEADLINE))
            idle = (datetime.now(UTC) - parse_time(current["lastUpdateTime"])).total_seconds()
            if idle <= deadline:
                self.queue.add_after(object_key(d), deadline - idle + 1)
                return
            message = f'ReplicaSet "{name}" has timed out progressing.'
            _set_condition(conditions, "Progressing", "False", "ProgressDeadlineExceeded", message)
            return
        message = f'ReplicaSet "{name}" is progressing.'
        _set_condition(conditions, "Progressing", "True", "ReplicaSetUpdated", message, touch=True)


def _progressed(old: Mapping[str, Any], new: Mapping[str, Any]) -> bool:
    """A step of the rollout happened: more updated/ready/available pods, fewer old ones, or a new spec."""
    return any(int(new.get(f) or 0) > int(old.get(f) or 0) for f in _PROGRESS_UP) or (
        int(new.get("replicas") or 0) < int(old.get("replicas") or 0)
        or new.get("observedGeneration") != old.get("observedGeneration")
    )


def _set_condition(
    conditions: dict[str, Obj], type_: str, status: str, reason: str, message: str, *, touch: bool = False
) -> None:
    """Set a condition; lastTransitionTime moves only when the status flips, lastUpdateTime on any change
    (or always with `touch`, which marks progress)."""
    current = conditions.get(type_)
    same = current is not None and (current.get("status"), current.get("reason"), current.get("message")) == (
        status,
        reason,
        message,
    )
    if same and not touch:
        return
    now = now_rfc3339()
    transition = current["lastTransitionTime"] if current is not None and current.get("status") == status else now
    conditions[type_] = {
        "type": type_,
        "status": status,
        "reason": reason,
        "message": message,
        "lastUpdateTime": now,
        "lastTransitionTime": transition,
    }
