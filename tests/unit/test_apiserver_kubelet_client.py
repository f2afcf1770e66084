"""The API server's identity towards agents: configured in its YAML file, presented when proxying `pods/log`."""

from __future__ import annotations

import asyncio
from pathlib import Path

import aiohttp
import pytest
from test_agent_logs import free_port

from provisioner.controlplane.agent.logs import LogServer
from provisioner.controlplane.apiserver.config import ApiServerConfig
from provisioner.controlplane.apiserver.subresources import KubeletClient
from provisioner.pki import CertificateAuthority


def _config(tmp_path: Path, **extra: Path) -> ApiServerConfig:
    return ApiServerConfig(bind_address="127.0.0.1", port=6443, tls_cert_file=tmp_path / "s.crt",
                           tls_key_file=tmp_path / "s.key", client_ca_file=tmp_path / "ca.crt",
                           etcd_endpoints=("127.0.0.1:2379",), etcd_ca_file=tmp_path / "ca.crt",
                           etcd_cert_file=tmp_path / "e.crt", etcd_key_file=tmp_path / "e.key", **extra)


def test_config_file_keeps_the_kubelet_client_certificate(tmp_path: Path) -> None:
    config = _config(tmp_path, kubelet_client_cert_file=tmp_path / "k.crt", kubelet_client_key_file=tmp_path / "k.key")
    config.dump(tmp_path / "apiserver.yaml")
    assert ApiServerConfig.load(tmp_path / "apiserver.yaml") == config


def test_config_file_without_kubelet_client_certificate_still_loads(tmp_path: Path) -> None:
    _config(tmp_path).dump(tmp_path / "apiserver.yaml")
    loaded = ApiServerConfig.load(tmp_path / "apiserver.yaml")
    assert (loaded.kubelet_client_cert_file, loaded.kubelet_client_key_file) == (None, None)


def test_agents_accept_the_kubelet_client_and_refuse_it_without_a_certificate(tmp_path: Path) -> None:
    ca = CertificateAuthority.load_or_create(tmp_path / "pki")
    agent = ca.issue("agent", common_name="system:node:n1", hosts=("127.0.0.1",), server=True)
    issued = ca.issue("kubelet-client", common_name="system:kube-apiserver-kubelet-client", client=True)
    port = free_port()
    server = LogServer(address="127.0.0.1", port=port, cert_file=agent.cert_file, key_file=agent.key_file,
                       ca_file=ca.cert_file, resolve=lambda *_: None)
    url = f"https://127.0.0.1:{port}/containerLogs/ns/p/main"

    async def status(client: KubeletClient) -> int:
        async with aiohttp.ClientSession() as session, session.get(url, ssl=client.ssl_context()) as resp:
            return resp.status

    async def scenario() -> None:
        serving = asyncio.create_task(server.run())
        try:
            with_cert = KubeletClient(ca_file=ca.cert_file, cert_file=issued.cert_file, key_file=issued.key_file)
            for _ in range(100):
                try:
                    assert await status(with_cert) == 404  # through the handshake; the pod is unknown
                    break
                except aiohttp.ClientConnectorError:
                    await asyncio.sleep(0.05)
            with pytest.raises(aiohttp.ClientError):
                await status(KubeletClient(ca_file=ca.cert_file))
        finally:
            serving.cancel()
            await asyncio.gather(serving, return_exceptions=True)

    asyncio.run(scenario())
