"""A TLS gRPC channel to an etcd cluster, failing over across every member.

aetcd only builds insecure channels; this subclass builds a `grpc.aio.secure_channel` over a
multi-address target (`ipv4:a:2379,b:2379`) so gRPC's round-robin policy moves to a live member
when one goes away. The `Store` uses the raw stubs it creates.
"""

from __future__ import annotations

import asyncio
import ipaddress
from collections.abc import Sequence
from pathlib import Path

import aetcd
import grpc
from aetcd import rpc, watcher

__all__ = ["TlsEtcdClient", "grpc_target"]


def grpc_target(endpoints: Sequence[str]) -> str:
    """`host:port` endpoints as one gRPC target; IP endpoints share an `ipv4:` list that fails over."""
    hosts = [e.rsplit(":", 1)[0].strip("[]") for e in endpoints]
    try:
        families = {ipaddress.ip_address(h).version for h in hosts}
    except ValueError:
        if len(endpoints) != 1:
            raise ValueError(f"etcd endpoints with host names must be a single endpoint: {list(endpoints)}") from None
        return f"dns:///{endpoints[0]}"
    scheme = "ipv4" if families == {4} else "ipv6"
    return f"{scheme}:{','.join(endpoints)}"


class TlsEtcdClient(aetcd.Client):
    """aetcd client over mutual TLS.

    gRPC checks every member's certificate against one name (a multi-address target has no single
    host), so each etcd server certificate must carry `server_name` (default "localhost") as a SAN.
    """

    def __init__(
        self,
        *,
        endpoints: Sequence[str],
        ca_file: Path,
        cert_file: Path,
        key_file: Path,
        server_name: str = "localhost",
        timeout: float = 10.0,
    ) -> None:
        options = {
            "grpc.lb_policy_name": "round_robin",
            "grpc.keepalive_time_ms": 10_000,
            "grpc.keepalive_timeout_ms": 5_000,
            "grpc.keepalive_permit_without_calls": 1,
            "grpc.initial_reconnect_backoff_ms": 200,
            "grpc.max_reconnect_backoff_ms": 2_000,
            "grpc.max_receive_message_length": 64 * 1024 * 1024,
        }
        options["grpc.ssl_target_name_override"] = server_name
        super().__init__(timeout=timeout, options=options)
        self._target = grpc_target(endpoints)
        self._credentials = grpc.ssl_channel_credentials(
            root_certificates=ca_file.read_bytes(),
            private_key=key_file.read_bytes(),
            certificate_chain=cert_file.read_bytes(),
        )

    async def connect(self) -> None:
        if self._connected.is_set():
            return
        if self._is_connecting:
            await asyncio.wait_for(self._connected.wait(), self._connect_wait_timeout)
            return
        self._is_connecting = True
        try:
            self.channel = rpc.secure_channel(self._target, self._credentials, options=list(self._options.items()))
            self.kvstub = rpc.KVStub(self.channel)
            self.clusterstub = rpc.ClusterStub(self.channel)
            self.leasestub = rpc.LeaseStub(self.channel)
            self.maintenancestub = rpc.MaintenanceStub(self.channel)
            self._watcher = watcher.Watcher(rpc.WatchStub(self.channel), timeout=self._timeout)
            self._connected.set()
        finally:
            self._is_connecting = False
