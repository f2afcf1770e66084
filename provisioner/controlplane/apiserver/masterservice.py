"""The `kubernetes` Service in `default` and its Endpoints: how in-cluster clients find the API servers.

As kube-apiserver does, every API server makes sure at start-up that the Service exists (with the
service range's first address) and adds its own address to the Endpoints; on a clean shutdown it
takes its address out again. Several servers edit the Endpoints concurrently through the
registry's compare-and-swap patch, so none loses another's entry.
"""

from __future__ import annotations

import asyncio
import copy
from typing import Any

from provisioner.controlplane.apiserver.registry import Registry
from provisioner.controlplane.apiserver.resources import ResourceType, by_kind
from provisioner.controlplane.apiserver.status import ApiError

__all__ = ["KUBERNETES_SERVICE", "ensure_kubernetes_service", "register_endpoint", "unregister_endpoint"]

KUBERNETES_SERVICE = "kubernetes"
_NAMESPACE = "default"
_SERVICES = by_kind("v1", "Service")
_ENDPOINTS = by_kind("v1", "Endpoints")
assert _SERVICES is not None and _ENDPOINTS is not None

Obj = dict[str, Any]
_LABELS = {"component": "apiserver", "provider": "kubernetes"}
_CREATE_ATTEMPTS = 50  # 10 s of 0.2 s waits for a racing server to store the Service


async def ensure_kubernetes_service(registry: Registry, *, cluster_ip: str, port: int) -> None:
    """Create `default/kubernetes` (HTTPS 443 -> `port`) unless it exists; losing a race to another server is fine."""
    service = {
        "apiVersion": "v1", "kind": "Service",
        "metadata": {"name": KUBERNETES_SERVICE, "namespace": _NAMESPACE, "labels": dict(_LABELS)},
        "spec": {"type": "ClusterIP", "clusterIP": cluster_ip, "sessionAffinity": "None",
                 "ports": [{"name": "https", "port": 443, "protocol": "TCP", "targetPort": port}]},
    }
    for _ in range(_CREATE_ATTEMPTS):
        if await _exists(registry, _SERVICES):
            return
        try:
            await registry.create(_SERVICES, copy.deepcopy(service), _NAMESPACE)
            return
        except ApiError as error:
            # AlreadyExists, or Invalid while another server holds the address and is about to store its Service.
            if error.code not in (409, 422):
                raise
        await asyncio.sleep(0.2)
    raise RuntimeError(f"the kubernetes Service did not appear, yet {cluster_ip} is allocated: remove "
                       f"/registry/ranges/serviceips/{cluster_ip} from etcd if no API server holds it")


async def _exists(registry: Registry, rt: ResourceType) -> bool:
    try:
        await registry.get(rt, KUBERNETES_SERVICE, _NAMESPACE)
    except ApiError as error:
        if error.code == 404:
            return False
        raise
    return True


def _with_endpoint(endpoints: Obj, *, address: str, port: int, present: bool) -> Obj:
    """`endpoints` with (address, port) added or removed; one subset per port, addresses sorted."""
    pairs = {(a.get("ip"), p.get("port")) for s in endpoints.get("subsets") or []
             for a in s.get("addresses") or [] for p in s.get("ports") or []}
    pairs = (pairs | {(address, port)}) if present else (pairs - {(address, port)})
    ports = sorted({p for _, p in pairs})
    endpoints["subsets"] = [{"addresses": [{"ip": a} for a in sorted(a for a, p in pairs if p == port_)],
                             "ports": [{"name": "https", "port": port_, "protocol": "TCP"}]} for port_ in ports]
    return endpoints


async def _edit(registry: Registry, *, address: str, port: int, present: bool) -> None:
    try:
        await registry.patch(_ENDPOINTS, name=KUBERNETES_SERVICE, namespace=_NAMESPACE, subresource="",
                             apply=lambda current: _with_endpoint(current, address=address, port=port,
                                                                   present=present))
        return
    except ApiError as error:
        if error.code != 404 or not present:
            raise
    created = {"apiVersion": "v1", "kind": "Endpoints",
               "metadata": {"name": KUBERNETES_SERVICE, "namespace": _NAMESPACE, "labels": dict(_LABELS)}}
    try:
        await registry.create(_ENDPOINTS, _with_endpoint(created, address=address, port=port, present=True),
                              _NAMESPACE)
    except ApiError as error:
        if error.code != 409:
            raise
        await _edit(registry, address=address, port=port, present=True)  # another server created it first


async def register_endpoint(registry: Registry, *, address: str, port: int) -> None:
    """Add this server's address to the `kubernetes` Endpoints."""
    await _edit(registry, address=address, port=port, present=True)


async def unregister_endpoint(registry: Registry, *, address: str, port: int) -> None:
    """Take this server's address out of the `kubernetes` Endpoints (clean shutdown)."""
    try:
        await _edit(registry, address=address, port=port, present=False)
    except ApiError as error:
        if error.code != 404:
            raise
