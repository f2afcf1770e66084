"""One API server process: its root tasks, its start-up work and its shutdown.

Concurrency model: one event loop; root tasks are the shared watch cache, the mirrors of
Namespaces and RBAC objects (authorization reads them from memory, never from etcd per
request) and the HTTPS site. Start-up creates the default namespaces, the bootstrap RBAC
policy and the `kubernetes` Service when missing (every API server does it; a lost race is
fine) and adds this server to the `kubernetes` Endpoints, which a clean stop undoes. A stop
event (set by SIGTERM/SIGINT) or the end of any root task stops them all.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
from typing import Any

from aiohttp import web

from provisioner.controlplane.apiserver.app import Documents, build_app, serving_ssl_context
from provisioner.controlplane.apiserver.authn import Authenticator
from provisioner.controlplane.apiserver.config import ApiServerConfig
from provisioner.controlplane.apiserver.masterservice import (
    ensure_kubernetes_service,
    register_endpoint,
    unregister_endpoint,
)
from provisioner.controlplane.apiserver.rbac import RBACAuthorizer, bootstrap_objects
from provisioner.controlplane.apiserver.registry import NAMESPACES, Admission, Registry
from provisioner.controlplane.apiserver.resources import RESOURCES, ResourceType, by_kind
from provisioner.controlplane.apiserver.serviceips import ServiceIPs
from provisioner.controlplane.apiserver.status import ApiError
from provisioner.controlplane.apiserver.subresources import KubeletClient
from provisioner.controlplane.store import PrefixMirror, Store, TlsEtcdClient, WatchCache

__all__ = ["DEFAULT_NAMESPACES", "MirroredRules", "run"]

log = logging.getLogger(__name__)

DEFAULT_NAMESPACES = ("default", "kube-system", "kube-public", "kube-node-lease")
_RBAC_KINDS = ("Role", "ClusterRole", "RoleBinding", "ClusterRoleBinding")


class MirroredRules:
    """The RBAC `RuleSource` over in-memory mirrors of the four RBAC kinds."""

    def __init__(self, mirrors: dict[str, PrefixMirror]) -> None:
        self._mirrors = mirrors

    def version(self) -> int:
        return sum(m.version for m in self._mirrors.values())

    async def list_objects(self, rt: ResourceType) -> list[dict[str, Any]]:
        return self._mirrors[rt.kind].values()


def _admission() -> Admission:
    from provisioner.controlplane.apiserver.defaults import apply_defaults
    from provisioner.controlplane.apiserver.validation import validate

    return Admission(apply_defaults=apply_defaults, validate=validate)


def _documents() -> Documents:
    from provisioner.controlplane.apiserver.openapi import openapi_v3_document, openapi_v3_index
    from provisioner.controlplane.apiserver.tables import to_table

    return Documents(openapi_index=openapi_v3_index, openapi_document=openapi_v3_document, to_table=to_table)


async def _ensure(registry: Registry, rt: ResourceType, obj: dict[str, Any]) -> None:
    try:
        await registry.create(rt, obj, obj.get("metadata", {}).get("namespace"))
    except ApiError as error:
        if error.reason != "AlreadyExists":
            raise


async def bootstrap(registry: Registry) -> None:
    """Default namespaces and RBAC policy, created when missing and never overwritten."""
    for name in DEFAULT_NAMESPACES:
        await _ensure(registry, NAMESPACES, {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}})
    for obj in bootstrap_objects():
        rt = by_kind(obj["apiVersion"], obj["kind"])
        assert rt is not None, obj["kind"]
        await _ensure(registry, rt, obj)


async def run(config: ApiServerConfig, *, stop: asyncio.Event, bookmark_interval: float = 10.0) -> None:
    client = TlsEtcdClient(endpoints=config.etcd_endpoints, ca_file=config.etcd_ca_file,
                           cert_file=config.etcd_cert_file, key_file=config.etcd_key_file)
    store = Store(client)
    cache = WatchCache(store)
    namespaces = PrefixMirror(store, cache, NAMESPACES.key_prefix())
    rbac = {rt.kind: PrefixMirror(store, cache, rt.key_prefix()) for rt in RESOURCES if rt.kind in _RBAC_KINDS}
    service_ips = ServiceIPs(store, cidr=config.service_cidr)
    registry = Registry(store, admission=_admission(), namespaces=namespaces, service_ips=service_ips)
    advertise = config.advertise_address or config.bind_address
    registered = False
    app = build_app(
        registry=registry, cache=cache, authenticator=Authenticator(token_file=config.token_file),
        authorizer=RBACAuthorizer(MirroredRules(rbac)), documents=_documents(),
        kubelet=KubeletClient(ca_file=config.client_ca_file, cert_file=config.kubelet_client_cert_file,
                              key_file=config.kubelet_client_key_file),
        server_address=f"{config.bind_address}:{config.port}",
        bookmark_interval=bookmark_interval,
    )
    runner = web.AppRunner(app, access_log=None, shutdown_timeout=2.0)
    try:
        async with asyncio.TaskGroup() as tasks:
            roots = [tasks.create_task(cache.run(), name="watch-cache"),
                     tasks.create_task(namespaces.run(), name="namespace-mirror"),
                     *(tasks.create_task(m.run(), name=f"{kind}-mirror") for kind, m in rbac.items())]
            await cache.wait_ready()
            await bootstrap(registry)
            await ensure_kubernetes_service(registry, cluster_ip=service_ips.first, port=config.port)
            if ipaddress.ip_address(advertise).is_unspecified:
                log.warning("no advertise_address: %s stays out of the kubernetes Endpoints", config.server_name)
            else:
                await register_endpoint(registry, address=advertise, port=config.port)
                registered = True
            for mirror in (namespaces, *rbac.values()):
                await mirror.wait_synced()
            await runner.setup()
            ssl_context = serving_ssl_context(cert_file=config.tls_cert_file, key_file=config.tls_key_file,
                                              client_ca_file=config.client_ca_file)
            await web.TCPSite(runner, config.bind_address, config.port, ssl_context=ssl_context,
                              backlog=1024).start()
            log.info("%s serving on https://%s:%d", config.server_name, config.bind_address, config.port)
            stopper = tasks.create_task(stop.wait(), name="stop")
            await asyncio.wait([stopper, *roots], return_when=asyncio.FIRST_COMPLETED)
            for task in (stopper, *roots):
                task.cancel()
    finally:
        await runner.cleanup()
        if registered:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(unregister_endpoint(registry, address=advertise, port=config.port), 2.0)
        with contextlib.suppress(Exception):
            await store.close()
