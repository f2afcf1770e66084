"""Namespace loop: a namespace being deleted is emptied, then its "kubernetes" finalizer is removed.

Every namespaced kind of the resource table is listed live from the API server (not a cache: the loop
must not miss anything created a moment ago) and deleted with background propagation. While anything
is left (terminating pods, objects held by finalizers) the namespace is looked at again shortly; once
nothing is left the finalizer goes and the API server removes the namespace.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from provisioner.controlplane.apiserver.resources import RESOURCES
from provisioner.controlplane.client import ApiStatusError, resource
from provisioner.controlplane.controllers.base import Controller, ControllerContext

__all__ = ["NAMESPACE_FINALIZER", "NamespaceController"]

log = logging.getLogger(__name__)

NAMESPACES = resource("namespaces")
NAMESPACE_FINALIZER = "kubernetes"
_RECHECK_SECONDS = 2.0


class NamespaceController(Controller):
    name = "namespace"

    def __init__(self, ctx: ControllerContext) -> None:
        super().__init__(ctx)
        self.namespaces = self.watch(NAMESPACES, self.own_key)

    async def reconcile(self, key: str) -> None:
        namespace = self.namespaces.get(key)
        if namespace is None or not namespace["metadata"].get("deletionTimestamp"):
            return
        if NAMESPACE_FINALIZER not in (namespace.get("spec") or {}).get("finalizers") or ():
            return
        remaining = await self._delete_content(key)
        if remaining:
            log.info("namespace %s: waiting for %d object(s) to go", key, remaining)
            self.queue.add_after(key, _RECHECK_SECONDS)
            return
        await self._finalize(namespace)
        await self.recorder.record(namespace, "Normal", "NamespaceFinalized", f"All content of {key} deleted")

    async def _delete_content(self, namespace: str) -> int:
        """Delete every namespaced object in `namespace`; the number of objects that still exist."""
        remaining = 0
        for rt in RESOURCES:
            if not rt.namespaced or "delete" not in rt.verbs:
                continue
            items, _ = await self.client.list(rt, namespace=namespace)
            remaining += len(items)
            for item in items:
                if item["metadata"].get("deletionTimestamp"):
                    continue
                try:
                    await self.client.delete(
                        rt, item["metadata"]["name"], namespace=namespace, propagation_policy="Background"
                    )
                except ApiStatusError as exc:
                    if not exc.not_found:
                        raise
        return remaining

    async def _finalize(self, namespace: Mapping[str, Any]) -> None:
        spec = dict(namespace.get("spec") or {})
        spec["finalizers"] = [f for f in spec.get("finalizers") or () if f != NAMESPACE_FINALIZER]
        await self.client.update(NAMESPACES, {**namespace, "spec": spec}, subresource="finalize")
