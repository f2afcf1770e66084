"""Authentication over real TLS, and RBAC end to end with the real kubectl against a dev cluster."""

from __future__ import annotations

import asyncio
import ssl
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from provisioner.controlplane.apiserver.authn import Authenticator
from provisioner.pki import CertificateAuthority

pytestmark = pytest.mark.integration


def _server_context(ca: CertificateAuthority) -> ssl.SSLContext:
    """What the API server does: client certificates optional, verified against the cluster CA."""
    serving = ca.issue("serving", common_name="apiserver", hosts=("127.0.0.1",), server=True)
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(serving.cert_file, serving.key_file)
    context.load_verify_locations(ca.cert_file)
    context.verify_mode = ssl.CERT_OPTIONAL
    return context


async def _whoami(ca: CertificateAuthority, authenticator: Authenticator,
                  clients: dict[str, tuple[ssl.SSLContext, dict[str, str]]]) -> dict[str, Any]:
    """Serve the authenticated user on loopback and ask it once per client; the server is always stopped."""

    async def handler(request: web.Request) -> web.Response:
        user = authenticator.authenticate(request)
        return web.json_response(None if user is None else [user.name, list(user.groups), user.uid])

    app = web.Application()
    app.router.add_get("/whoami", handler)
    runner = web.AppRunner(app)
    await runner.setup()
    try:
        site = web.TCPSite(runner, "127.0.0.1", 0, ssl_context=_server_context(ca))
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        answers = {}
        for name, (context, headers) in clients.items():
            async with aiohttp.ClientSession() as session, session.get(
                    f"https://127.0.0.1:{port}/whoami", ssl=context, headers=headers) as response:
                answers[name] = await response.json()
        return answers
    finally:
        await runner.cleanup()


def _client_context(ca: CertificateAuthority, *, cert: tuple[Path, Path] | None) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=str(ca.cert_file))
    if cert is not None:
        context.load_cert_chain(*cert)
    return context


def test_client_certificates_and_tokens_authenticate_over_real_tls(tmp_path: Path) -> None:
    ca = CertificateAuthority.load_or_create(tmp_path / "pki")
    alice = ca.issue("alice", common_name="alice", organizations=("dev", "ops"), client=True)
    tokens = tmp_path / "tokens.csv"
    tokens.write_text('s3cret,bob,1002,"viewers"\n')
    with_cert = _client_context(ca, cert=(alice.cert_file, alice.key_file))
    without_cert = _client_context(ca, cert=None)
    answers = asyncio.run(_whoami(ca, Authenticator(token_file=tokens), {
        "cert": (with_cert, {}),
        "cert-and-token": (with_cert, {"Authorization": "Bearer s3cret"}),
        "token": (without_cert, {"Authorization": "Bearer s3cret"}),
        "wrong-token": (without_cert, {"Authorization": "Bearer guess"}),
        "anonymous": (without_cert, {}),
    }))
    assert answers == {
        "cert": ["alice", ["dev", "ops", "system:authenticated"], ""],
        "cert-and-token": ["alice", ["dev", "ops", "system:authenticated"], ""],
        "token": ["bob", ["viewers", "system:authenticated"], "1002"],
        "wrong-token": None,
        "anonymous": None,
    }


def test_certificate_from_another_ca_never_reaches_authentication(tmp_path: Path) -> None:
    ca = CertificateAuthority.load_or_create(tmp_path / "pki")
    rogue_ca = CertificateAuthority.load_or_create(tmp_path / "rogue")
    mallory = rogue_ca.issue("mallory", common_name="admin", organizations=("system:masters",), client=True)
    context = _client_context(ca, cert=(mallory.cert_file, mallory.key_file))
    with pytest.raises(aiohttp.ClientError):
        asyncio.run(_whoami(ca, Authenticator(token_file=None), {"rogue": (context, {})}))
