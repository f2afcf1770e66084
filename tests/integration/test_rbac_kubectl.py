"""Authentication over real TLS, and RBAC end to end with the real kubectl against a dev cluster."""

from __future__ import annotations

import asyncio
import json
import os
import ssl
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import yaml
from aiohttp import web
from conftest import DevCluster, Kubectl

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


def _issue(cluster: DevCluster, user: str, *groups: str) -> Path:
    """`provision kubeconfig --user USER --group G...` exactly as an operator runs it; returns the printed path."""
    argv = [str(Path(sys.executable).parent / "provision"), "kubeconfig", "--name", cluster.name, "--user", user,
            *(arg for group in groups for arg in ("--group", group))]
    result = subprocess.run(argv, env={**os.environ, "PROVISIONER_HOME": str(cluster.home)}, capture_output=True,
                            text=True, timeout=120, check=False)
    assert result.returncode == 0, result.stderr
    return Path(result.stdout.strip().splitlines()[-1])


def _until(run: Callable[[], subprocess.CompletedProcess[str]], *, succeeds: bool) -> subprocess.CompletedProcess[str]:
    """Repeat a kubectl call until it succeeds (or fails): RBAC changes reach every API server through a watch."""
    for _ in range(100):
        result = run()
        if (result.returncode == 0) is succeeds:
            return result
        time.sleep(0.2)
    raise AssertionError(f"expected {'success' if succeeds else 'failure'}, last: {result.stdout}{result.stderr}")


def _manifest(kind: str, name: str, namespace: str, **fields: Any) -> str:
    api_version = "v1" if kind in ("Namespace", "ConfigMap") else "rbac.authorization.k8s.io/v1"
    metadata = {"name": name, "namespace": namespace} if namespace else {"name": name}
    return yaml.safe_dump({"apiVersion": api_version, "kind": kind, "metadata": metadata, **fields})


def _role_binding(name: str, namespace: str, *, role: str, subject: tuple[str, str]) -> str:
    kind, subject_name = subject
    return _manifest("RoleBinding", name, namespace,
                     roleRef={"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": role},
                     subjects=[{"apiGroup": "rbac.authorization.k8s.io", "kind": kind, "name": subject_name}])


@pytest.fixture
def namespace(kubectl: Kubectl) -> Iterator[str]:
    name = f"rbac-{uuid.uuid4().hex[:6]}"
    kubectl("apply", "-f", "-", stdin=_manifest("Namespace", name, ""), check=True)
    try:
        yield name
    finally:
        kubectl("delete", "namespace", name, "--wait=false")


def test_issued_user_is_forbidden_until_a_role_binding_allows_it(
        dev_cluster: DevCluster, kubectl: Kubectl, namespace: str) -> None:
    alice = _issue(dev_cluster, "alice")

    def alice_lists_pods(server: str | None = None) -> subprocess.CompletedProcess[str]:
        return kubectl("get", "pods", "-n", namespace, *([f"--server={server}"] if server else []), kubeconfig=alice)

    assert json.loads(kubectl("version", "-o", "json", kubeconfig=alice, check=True).stdout)["serverVersion"]
    denied = alice_lists_pods()
    assert denied.returncode != 0
    assert (f'pods is forbidden: User "alice" cannot list resource "pods" in API group "" in the namespace '
            f'"{namespace}"') in denied.stderr
    nodes = kubectl("get", "nodes", kubeconfig=alice)
    assert 'User "alice" cannot list resource "nodes" in API group "" at the cluster scope' in nodes.stderr

    kubectl("apply", "-f", "-", stdin=_role_binding("alice-view", namespace, role="view", subject=("User", "alice")),
            check=True)
    for server in dev_cluster.apiservers:
        assert "No resources found" in _until(lambda s=server: alice_lists_pods(s), succeeds=True).stderr
    elsewhere = kubectl("get", "pods", "-n", "default", kubeconfig=alice)
    assert 'cannot list resource "pods" in API group "" in the namespace "default"' in elsewhere.stderr
    write = kubectl("apply", "-f", "-", stdin=_manifest("ConfigMap", "by-alice", namespace), kubeconfig=alice)
    assert f'cannot create resource "configmaps" in API group "" in the namespace "{namespace}"' in write.stderr

    kubectl("delete", "rolebinding", "alice-view", "-n", namespace, check=True)
    for server in dev_cluster.apiservers:
        revoked = _until(lambda s=server: alice_lists_pods(s), succeeds=False)
        assert 'User "alice" cannot list resource "pods"' in revoked.stderr


def test_group_of_an_issued_user_is_bound_by_group(dev_cluster: DevCluster, kubectl: Kubectl, namespace: str) -> None:
    bob = _issue(dev_cluster, "bob", "dev")
    configmap = _manifest("ConfigMap", "by-bob", namespace, data={"who": "bob"})
    denied = kubectl("apply", "-f", "-", stdin=configmap, kubeconfig=bob)
    assert 'User "bob" cannot' in denied.stderr

    kubectl("apply", "-f", "-", stdin=_role_binding("dev-edit", namespace, role="edit", subject=("Group", "dev")),
            check=True)
    _until(lambda: kubectl("apply", "-f", "-", stdin=configmap, kubeconfig=bob), succeeds=True)
    assert kubectl("get", "configmap", "by-bob", "-n", namespace, "-o", "jsonpath={.data.who}", check=True,
                   kubeconfig=bob).stdout == "bob"
    grant = kubectl("apply", "-f", "-", kubeconfig=bob,
                    stdin=_role_binding("bob-admin", namespace, role="admin", subject=("User", "bob")))
    assert f'cannot get resource "rolebindings" in API group "rbac.authorization.k8s.io" in the namespace ' \
           f'"{namespace}"' in grant.stderr
