"""The agent's Node: registration with what the host has, the heartbeat Lease, and status reports.

The Lease kube-node-lease/<node> is renewed every `lease_interval` (10 s); it is the heartbeat the node
lifecycle controller watches. The Node's status (conditions, images, capacity) is written when it
changes and at least every `status_interval`, as the kubelet does, so 1,000 nodes do not flood the API.
"""

from __future__ import annotations

import asyncio
import logging
import os
import platform
import socket
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp

from provisioner.controlplane.client import ApiClient, ApiStatusError, resource

__all__ = ["AGENT_VERSION", "LOG_PORT", "HostInfo", "NodeReporter"]

log = logging.getLogger(__name__)

AGENT_VERSION = "v1.30.0-provisioner"
LOG_PORT = 10250
LEASE_NAMESPACE = "kube-node-lease"
NODES, LEASES, NAMESPACES = resource("nodes"), resource("leases"), resource("namespaces")
_API_ERRORS = (ApiStatusError, aiohttp.ClientError, OSError, TimeoutError)


def _read(path: str, default: str = "") -> str:
    try:
        return Path(path).read_text().strip()
    except OSError:
        return default


def _os_image() -> str:
    for line in _read("/etc/os-release").splitlines():
        if line.startswith("PRETTY_NAME="):
            return line.split("=", 1)[1].strip('"')
    return platform.system()


def _memory_bytes() -> int:
    for line in _read("/proc/meminfo").splitlines():
        if line.startswith("MemTotal:"):
            return int(line.split()[1]) * 1024
    return 0


_ARCH = {"x86_64": "amd64", "aarch64": "arm64", "armv7l": "arm"}


@dataclass(frozen=True)
class HostInfo:
    """What the Node reports about its machine."""

    cpus: int
    memory: int
    pods: int = 110
    kernel: str = ""
    os_image: str = ""
    architecture: str = "amd64"
    machine_id: str = ""
    boot_id: str = ""

    @classmethod
    def detect(cls) -> HostInfo:
        return cls(
            cpus=os.cpu_count() or 1,
            memory=_memory_bytes(),
            kernel=platform.release(),
            os_image=_os_image(),
            architecture=_ARCH.get(platform.machine(), platform.machine()),
            machine_id=_read("/etc/machine-id") or uuid.uuid5(uuid.NAMESPACE_DNS, socket.gethostname()).hex,
            boot_id=_read("/proc/sys/kernel/random/boot_id"),
        )


def _now(*, micro: bool = False) -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ" if micro else "%Y-%m-%dT%H:%M:%SZ")


@dataclass
class NodeReporter:
    """Registers one Node and keeps its Lease and status fresh; `extra_conditions` come from the agent."""

    client: ApiClient
    node_name: str
    address: str
    host: HostInfo
    labels: Mapping[str, str] = field(default_factory=dict)
    lease_interval: float = 10.0
    status_interval: float = 60.0
    images: set[str] = field(default_factory=set)
    extra_conditions: list[dict[str, Any]] = field(default_factory=list)
    _changed: asyncio.Event = field(default_factory=asyncio.Event)

    def node_object(self) -> dict[str, Any]:
        host = self.host
        resources = {"cpu": str(host.cpus), "memory": f"{host.memory // 1024}Ki", "pods": str(host.pods)}
        return {
            "apiVersion": "v1",
            "kind": "Node",
            "metadata": {
                "name": self.node_name,
                "labels": {
                    "kubernetes.io/hostname": self.node_name,
                    "kubernetes.io/os": "linux",
                    "kubernetes.io/arch": host.architecture,
                    **self.labels,
                },
            },
            "spec": {},
            "status": self.status(resources),
        }

    def status(self, resources: Mapping[str, str] | None = None) -> dict[str, Any]:
        host = self.host
        resources = resources or {"cpu": str(host.cpus), "memory": f"{host.memory // 1024}Ki", "pods": str(host.pods)}
        now = _now()
        ready = {"type": "Ready", "status": "True", "reason": "KubeletReady",
                 "message": "agent is posting ready status"}
        pressure = [{"type": t, "status": "False", "reason": f"KubeletHas{r}", "message": m}
                    for t, r, m in (("MemoryPressure", "SufficientMemory", "agent has sufficient memory available"),
                                    ("DiskPressure", "NoDiskPressure", "agent has no disk pressure"),
                                    ("PIDPressure", "SufficientPID", "agent has sufficient PID available"))]
        conditions = [{**c, "lastHeartbeatTime": now, "lastTransitionTime": now}
                      for c in (*pressure, ready, *self.extra_conditions)]
        return {
            "capacity": dict(resources),
            "allocatable": dict(resources),
            "conditions": conditions,
            "addresses": [{"type": "InternalIP", "address": self.address},
                          {"type": "Hostname", "address": self.node_name}],
            "daemonEndpoints": {"kubeletEndpoint": {"Port": LOG_PORT}},
            "nodeInfo": {
                "architecture": host.architecture,
                "bootID": host.boot_id,
                "containerRuntimeVersion": "provisioner-process://0.1",
                "kernelVersion": host.kernel,
                "kubeProxyVersion": "",
                "kubeletVersion": AGENT_VERSION,
                "machineID": host.machine_id,
                "operatingSystem": "linux",
                "osImage": host.os_image,
                "systemUUID": host.machine_id,
            },
            "images": [{"names": [image], "sizeBytes": 0} for image in sorted(self.images)],
        }

    def add_image(self, image: str) -> None:
        if image not in self.images:
            self.images.add(image)
            self._changed.set()

    async def register(self) -> None:
        """Create the Node, or take over an existing one (a restarted agent) by rewriting its status."""
        try:
            await self.client.create(NODES, self.node_object())
            log.info("registered node %s", self.node_name)
        except ApiStatusError as exc:
            if exc.code != 409:
                raise
            await self.write_status()

    async def write_status(self) -> None:
        """Patch the Node's status; a Node deleted behind the agent's back is registered again."""
        try:
            await self.client.patch(NODES, self.node_name, {"status": self.status()}, subresource="status")
        except ApiStatusError as exc:
            if not exc.not_found:
                raise
            await self.client.create(NODES, self.node_object())

    async def renew_lease(self) -> None:
        spec = {"holderIdentity": self.node_name, "leaseDurationSeconds": 40, "renewTime": _now(micro=True)}
        try:
            await self.client.patch(LEASES, self.node_name, {"spec": spec}, namespace=LEASE_NAMESPACE)
        except ApiStatusError as exc:
            if not exc.not_found:
                raise
            await self._create_lease(spec)

    async def _create_lease(self, spec: Mapping[str, Any]) -> None:
        try:
            await self.client.create(NAMESPACES, {"metadata": {"name": LEASE_NAMESPACE}})
        except ApiStatusError as exc:
            if exc.code not in (403, 409):
                raise
        lease = {"metadata": {"name": self.node_name, "namespace": LEASE_NAMESPACE,
                              "ownerReferences": await self._owner()}, "spec": dict(spec)}
        await self.client.create(LEASES, lease)

    async def _owner(self) -> list[dict[str, Any]]:
        try:
            node = await self.client.get(NODES, self.node_name)
        except ApiStatusError:
            return []
        return [{"apiVersion": "v1", "kind": "Node", "name": self.node_name, "uid": node["metadata"]["uid"]}]

    async def run(self) -> None:
        """Register (retrying until the API answers), then heartbeat forever; API outages are only logged."""
        while True:
            try:
                await self.register()
                break
            except _API_ERRORS as exc:
                log.warning("node %s: registration failed (%s), retrying", self.node_name, exc)
                await asyncio.sleep(self.lease_interval / 5)
        async with asyncio.TaskGroup() as group:
            group.create_task(self.heartbeat(), name="lease")
            group.create_task(self._status_loop(), name="node-status")

    async def heartbeat(self) -> None:
        """Renew the Lease every `lease_interval`; after a failure retry 5x sooner, so an outage ends quickly."""
        while True:
            try:
                await self.renew_lease()
                delay = self.lease_interval
            except _API_ERRORS as exc:
                log.warning("node %s: lease renewal failed: %s", self.node_name, exc)
                delay = self.lease_interval / 5
            await asyncio.sleep(delay)

    async def _status_loop(self) -> None:
        while True:
            try:
                async with asyncio.timeout(self.status_interval):
                    await self._changed.wait()
            except TimeoutError:
                pass
            self._changed.clear()
            try:
                await self.write_status()
            except _API_ERRORS as exc:
                log.warning("node %s: status update failed: %s", self.node_name, exc)
                self._changed.set()
                await asyncio.sleep(self.lease_interval / 5)

    def condition_changed(self) -> None:
        self._changed.set()
