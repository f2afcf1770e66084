"""The agent's log endpoint over real TLS on loopback: tail, follow until the container ends, 404s, and only
for clients holding a certificate from the cluster CA."""

from __future__ import annotations

import asyncio
import json
import socket
import ssl
from pathlib import Path

import aiohttp
import pytest

from provisioner.controlplane.agent import shim
from provisioner.controlplane.agent.logs import LogServer
from provisioner.controlplane.agent.runtime import Attempt
from provisioner.pki import CertificateAuthority


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_log_endpoint_tails_follows_reports_unknown_containers_and_refuses_foreign_clients(tmp_path: Path) -> None:
    ca = CertificateAuthority.load_or_create(tmp_path / "pki")
    server_cert = ca.issue("agent", common_name="system:node:n1", hosts=("127.0.0.1",), server=True)
    client_cert = ca.issue("apiserver-client", common_name="apiserver", client=True)
    attempt = Attempt(tmp_path / "pods" / "uid1" / "main" / "0", 0)
    attempt.directory.mkdir(parents=True)
    attempt.log_file.write_text("one\ntwo\nthree\n")
    port = free_port()
    server = LogServer(address="127.0.0.1", port=port, cert_file=server_cert.cert_file,
                       key_file=server_cert.key_file, ca_file=ca.cert_file,
                       resolve=lambda ns, pod, c, previous: attempt if (ns, pod, c) == ("ns", "p", "main") else None)
    context = ssl.create_default_context(cafile=str(ca.cert_file))
    context.load_cert_chain(str(client_cert.cert_file), str(client_cert.key_file))
    anonymous = ssl.create_default_context(cafile=str(ca.cert_file))
    stranger = CertificateAuthority.load_or_create(tmp_path / "other-pki").issue("x", common_name="apiserver",
                                                                                 client=True)
    foreign = ssl.create_default_context(cafile=str(ca.cert_file))
    foreign.load_cert_chain(str(stranger.cert_file), str(stranger.key_file))
    base = f"https://127.0.0.1:{port}/containerLogs"

    async def scenario() -> None:
        serving = asyncio.create_task(server.run())
        try:
            async with aiohttp.ClientSession() as session:
                for _ in range(100):
                    try:
                        async with session.get(f"{base}/ns/p/main", ssl=context) as resp:
                            assert await resp.text() == "one\ntwo\nthree\n"
                        break
                    except aiohttp.ClientConnectorError:
                        await asyncio.sleep(0.05)
                for refused in (anonymous, foreign):
                    with pytest.raises(aiohttp.ClientError):
                        async with session.get(f"{base}/ns/p/main", ssl=refused) as resp:
                            await resp.text()
                async with session.get(f"{base}/ns/p/main", params={"tailLines": "1"}, ssl=context) as resp:
                    assert await resp.text() == "three\n"
                async with session.get(f"{base}/ns/p/other", ssl=context) as resp:
                    assert resp.status == 404
                    assert "container 'other' of pod ns/p not found" in await resp.text()

                async def finish_later() -> None:
                    await asyncio.sleep(0.5)
                    with attempt.log_file.open("a") as f:
                        f.write("four\n")
                    (attempt.directory / shim.EXIT_FILE).write_text(json.dumps({"exitCode": 0}))

                writer = asyncio.create_task(finish_later())
                params = {"follow": "true", "tailLines": "2"}
                async with session.get(f"{base}/ns/p/main", params=params, ssl=context) as resp:
                    assert await asyncio.wait_for(resp.text(), 10) == "two\nthree\nfour\n"
                await writer
        finally:
            serving.cancel()
            await asyncio.gather(serving, return_exceptions=True)

    asyncio.run(scenario())
