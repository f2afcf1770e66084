"""Endpoints loop: for each Service with a selector, an Endpoints object listing its pods' addresses.

Ready pods go to `addresses`, the others (running, with an IP, not terminating) to
`notReadyAddresses` (all to `addresses` when the Service publishes not-ready addresses). Each service
port resolves its `targetPort` per pod: a number as is, a name through the pod's container ports (a
pod without that port name is left out of that port's subset). Pods with identical resolved ports
share one subset. The Endpoints object is written only when it differs.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from provisioner.controlplane.apiserver.selectors import label_selector_from_map
from provisioner.controlplane.client import ApiStatusError, object_key, resource
from provisioner.controlplane.controllers.base import Controller, ControllerContext
from provisioner.controlplane.controllers.podstate import is_ready

__all__ = ["EndpointsController", "endpoint_subsets"]

log = logging.getLogger(__name__)

SERVICES = resource("services")
ENDPOINTS = resource("endpoints")
PODS = resource("pods")

Obj = dict[str, Any]


def _resolve_port(service_port: Mapping[str, Any], pod: Mapping[str, Any]) -> int | None:
    target = service_port.get("targetPort", service_port.get("port"))
    if isinstance(target, int):
        return target
    if isinstance(target, str) and target.isdigit():
        return int(target)
    for container in (pod.get("spec") or {}).get("containers") or ():
        for port in container.get("ports") or ():
            if port.get("name") == target and (port.get("protocol") or "TCP") == (
                service_port.get("protocol") or "TCP"
            ):
                return int(port["containerPort"])
    return None


def _address(pod: Mapping[str, Any]) -> Obj:
    meta = pod["metadata"]
    address: Obj = {
        "ip": pod["status"]["podIP"],
        "targetRef": {"kind": "Pod", "namespace": meta["namespace"], "name": meta["name"], "uid": meta["uid"]},
    }
    if (pod.get("spec") or {}).get("nodeName"):
        address["nodeName"] = pod["spec"]["nodeName"]
    return address


def endpoint_subsets(service: Mapping[str, Any], pods: list[Mapping[str, Any]]) -> list[Obj]:
    """The `subsets` of a Service's Endpoints for the (already selected) pods, in a stable order."""
    publish_all = bool(service["spec"].get("publishNotReadyAddresses"))
    groups: dict[tuple[tuple[str, int, str], ...], tuple[list[Obj], list[Obj]]] = {}
    for pod in sorted(pods, key=lambda p: p["metadata"]["name"]):
        status = pod.get("status") or {}
        if not status.get("podIP") or pod["metadata"].get("deletionTimestamp"):
            continue
        if status.get("phase") in ("Succeeded", "Failed"):
            continue
        ports: list[tuple[str, int, str]] = []
        for sp in service["spec"].get("ports") or ():
            number = _resolve_port(sp, pod)
            if number is not None:
                ports.append((sp.get("name") or "", number, sp.get("protocol") or "TCP"))
        ready, not_ready = groups.setdefault(tuple(ports), ([], []))
        (ready if publish_all or is_ready(pod) else not_ready).append(_address(pod))
    subsets = []
    for ports_key in sorted(groups):
        ready, not_ready = groups[ports_key]
        subset: Obj = {}
        if ready:
            subset["addresses"] = ready
        if not_ready:
            subset["notReadyAddresses"] = not_ready
        if ports_key:
            subset["ports"] = [
                {**({"name": name} if name else {}), "port": port, "protocol": protocol}
                for name, port, protocol in ports_key
            ]
        subsets.append(subset)
    return subsets


class EndpointsController(Controller):
    name = "endpoints"

    def __init__(self, ctx: ControllerContext) -> None:
        super().__init__(ctx)
        self.services = self.watch(SERVICES, self.own_key)
        self.endpoints = self.watch(ENDPOINTS, self.own_key)
        self.pods = self.watch(PODS, self._services_of_pod)

    def _services_of_pod(self, pod: Mapping[str, Any]) -> list[str]:
        namespace = pod["metadata"].get("namespace", "")
        labels = pod["metadata"].get("labels") or {}
        return [
            object_key(svc)
            for svc in self.services.by_index("namespace", namespace)
            if (selector := (svc.get("spec") or {}).get("selector"))
            and label_selector_from_map(selector).matches(labels)
        ]

    async def reconcile(self, key: str) -> None:
        namespace, _, name = key.partition("/")
        service = self.services.get(key)
        current = self.endpoints.get(key)
        if service is None:
            if current is not None:
                await self._delete(current)
            return
        selector = (service.get("spec") or {}).get("selector")
        if not selector:
            return  # endpoints of a selector-less Service are managed by hand
        match = label_selector_from_map(selector)
        pods = [
            p for p in self.pods.by_index("namespace", namespace) if match.matches(p["metadata"].get("labels") or {})
        ]
        subsets = endpoint_subsets(service, pods)
        labels = dict(service["metadata"].get("labels") or {})
        if current is None:
            await self.client.create(
                ENDPOINTS, {"metadata": {"name": name, "namespace": namespace, "labels": labels}, "subsets": subsets}
            )
        elif (current.get("subsets") or []) != subsets or (current["metadata"].get("labels") or {}) != labels:
            await self.client.update(
                ENDPOINTS, {**current, "metadata": {**current["metadata"], "labels": labels}, "subsets": subsets}
            )

    async def _delete(self, endpoints: Mapping[str, Any]) -> None:
        meta = endpoints["metadata"]
        try:
            await self.client.delete(
                ENDPOINTS, meta["name"], namespace=meta["namespace"], preconditions={"uid": meta["uid"]}
            )
        except ApiStatusError as exc:
            if not exc.not_found:
                raise
