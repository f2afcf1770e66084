"""An asyncio client for the API server: plain dicts in and out, Kubernetes semantics on the wire.

One aiohttp session per `ApiClient`, mutual TLS with the cluster CA. Non-2xx answers become
`ApiStatusError` carrying the server's `Status` reason; a watch that is too old raises `WatchExpired`
so callers re-list.
"""

from __future__ import annotations

import base64
import json
import logging
import ssl
import tempfile
from collections.abc import AsyncIterator, Mapping
from pathlib import Path
from types import TracebackType
from typing import Any, Literal

import aiohttp
import yaml

from provisioner.controlplane.apiserver.resources import RESOURCES, ResourceType
from provisioner.errors import ProvisionerError

__all__ = ["ApiClient", "ApiStatusError", "PatchType", "WatchExpired", "object_key", "resource"]

log = logging.getLogger(__name__)

PatchType = Literal["merge", "strategic", "json"]

_PATCH_CONTENT_TYPES: dict[str, str] = {
    "merge": "application/merge-patch+json",
    "strategic": "application/strategic-merge-patch+json",
    "json": "application/json-patch+json",
}
_LIST_PAGE = 500
_REQUEST_TIMEOUT = aiohttp.ClientTimeout(total=30, sock_connect=10)


class ApiStatusError(Exception):
    """A non-2xx answer; `reason` is the Status reason (NotFound, Conflict, AlreadyExists, Invalid...)."""

    def __init__(self, code: int, reason: str, message: str) -> None:
        super().__init__(f"{code} {reason}: {message}")
        self.code = code
        self.reason = reason
        self.message = message

    @property
    def not_found(self) -> bool:
        return self.code == 404

    @property
    def conflict(self) -> bool:
        return self.code == 409


class WatchExpired(ApiStatusError):
    """The watch's resourceVersion is gone (410 Expired): the caller must list again."""


def resource(plural: str) -> ResourceType:
    """The served resource called `plural` (e.g. "pods", "deployments"); plurals are unique here."""
    for rt in RESOURCES:
        if rt.plural == plural:
            return rt
    raise KeyError(f"unknown resource {plural!r}")


def object_key(obj: Mapping[str, Any]) -> str:
    """The cache/work-queue key of an object: `namespace/name`, or `name` when cluster-scoped."""
    meta = obj["metadata"]
    namespace = meta.get("namespace")
    return f"{namespace}/{meta['name']}" if namespace else str(meta["name"])


def _status_error(code: int, body: bytes) -> ApiStatusError:
    try:
        status = json.loads(body)
    except ValueError:
        status = {}
    if not isinstance(status, dict):
        status = {}
    reason = str(status.get("reason") or "Unknown")
    message = str(status.get("message") or body[:500].decode(errors="replace"))
    cls = WatchExpired if code == 410 else ApiStatusError
    return cls(code, reason, message)


def _tls_context(*, ca_pem: bytes, cert_pem: bytes, key_pem: bytes) -> ssl.SSLContext:
    """Mutual TLS from PEM bytes; the client pair passes through a private temporary directory because
    `ssl` loads certificate chains only from files (the context keeps them in memory afterwards)."""
    context = ssl.create_default_context(cadata=ca_pem.decode())
    with tempfile.TemporaryDirectory(prefix="provisioner-tls-") as tmp:
        cert_file, key_file = Path(tmp) / "tls.crt", Path(tmp) / "tls.key"
        cert_file.write_bytes(cert_pem)
        key_file.touch(mode=0o600)
        key_file.write_bytes(key_pem)
        context.load_cert_chain(cert_file, key_file)
    return context


def _kubeconfig_pem(entry: Mapping[str, Any], field: str, base: Path) -> bytes:
    """A kubeconfig credential given either as a file (`field`) or inline (`field-data`, base64)."""
    if entry.get(f"{field}-data"):
        return base64.b64decode(entry[f"{field}-data"])
    if entry.get(field):
        return (base / str(entry[field])).read_bytes()
    raise ProvisionerError(
        f"kubeconfig has no {field} or {field}-data", hint="use the kubeconfig `provision kubeconfig` prints"
    )


class ApiClient:
    """Async context manager over one aiohttp session talking HTTPS to one API server address."""

    def __init__(self, *, server: str, ca_file: Path, cert_file: Path, key_file: Path) -> None:
        self._setup(
            server,
            _tls_context(
                ca_pem=Path(ca_file).read_bytes(),
                cert_pem=Path(cert_file).read_bytes(),
                key_pem=Path(key_file).read_bytes(),
            ),
        )

    def _setup(self, server: str, tls: ssl.SSLContext) -> None:
        self.server = server.rstrip("/")
        self._ssl = tls
        self._session: aiohttp.ClientSession | None = None

    @classmethod
    def from_kubeconfig(cls, path: Path) -> ApiClient:
        """Client for the current context of a kubeconfig (certificates as files or inline data)."""
        config = yaml.safe_load(Path(path).read_text())
        contexts = {c["name"]: c["context"] for c in config.get("contexts") or []}
        context = contexts.get(config.get("current-context", "")) or next(iter(contexts.values()), None)
        if context is None:
            raise ProvisionerError(f"kubeconfig {path} has no context", hint="use `provision kubeconfig`")
        cluster = {c["name"]: c["cluster"] for c in config["clusters"]}[context["cluster"]]
        user = {u["name"]: u["user"] for u in config["users"]}[context["user"]]
        base = Path(path).parent
        tls = _tls_context(
            ca_pem=_kubeconfig_pem(cluster, "certificate-authority", base),
            cert_pem=_kubeconfig_pem(user, "client-certificate", base),
            key_pem=_kubeconfig_pem(user, "client-key", base),
        )
        client = cls.__new__(cls)
        client._setup(cluster["server"], tls)
        return client

    async def __aenter__(self) -> ApiClient:
        self._session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=self._ssl, limit=64))
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    @property
    def session(self) -> aiohttp.ClientSession:
        if self._session is None:
            raise RuntimeError("ApiClient used outside `async with`")
        return self._session

    async def request(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, str] | None = None,
        body: Any = None,
        content_type: str = "application/json",
    ) -> Any:
        """One request; the decoded JSON answer, or ApiStatusError."""
        data = None if body is None else json.dumps(body).encode()
        headers = {"Accept": "application/json"}
        if data is not None:
            headers["Content-Type"] = content_type
        async with self.session.request(
            method, self.server + path, params=params, data=data, headers=headers, timeout=_REQUEST_TIMEOUT
        ) as resp:
            raw = await resp.read()
            if resp.status >= 300:
                raise _status_error(resp.status, raw)
            return json.loads(raw) if raw else None

    @staticmethod
    def _path(rt: ResourceType, name: str | None, namespace: str | None, subresource: str | None = None) -> str:
        if rt.namespaced and name and not namespace:
            raise ValueError(f"{rt.plural} {name!r} needs a namespace")
        path = rt.url_path(name, namespace)
        return f"{path}/{subresource}" if subresource else path

    @staticmethod
    def _selectors(label_selector: str | None, field_selector: str | None) -> dict[str, str]:
        params = {}
        if label_selector:
            params["labelSelector"] = label_selector
        if field_selector:
            params["fieldSelector"] = field_selector
        return params

    async def get(self, rt: ResourceType, name: str, *, namespace: str | None = None) -> dict[str, Any]:
        obj: dict[str, Any] = await self.request("GET", self._path(rt, name, namespace))
        return obj

    async def list(
        self,
        rt: ResourceType,
        *,
        namespace: str | None = None,
        label_selector: str | None = None,
        field_selector: str | None = None,
    ) -> tuple[list[dict[str, Any]], str]:
        """All items (following `continue`) and the list's resourceVersion; items carry kind/apiVersion."""
        params = {"limit": str(_LIST_PAGE), **self._selectors(label_selector, field_selector)}
        items: list[dict[str, Any]] = []
        while True:
            page = await self.request("GET", self._path(rt, None, namespace), params=params)
            for item in page.get("items") or []:
                item.setdefault("kind", rt.kind)
                item.setdefault("apiVersion", rt.api_version)
                items.append(item)
            meta = page.get("metadata") or {}
            if not meta.get("continue"):
                return items, str(meta.get("resourceVersion", ""))
            params["continue"] = meta["continue"]

    async def create(self, rt: ResourceType, obj: Mapping[str, Any], *, namespace: str | None = None) -> dict[str, Any]:
        namespace = namespace or obj.get("metadata", {}).get("namespace")
        body = {"apiVersion": rt.api_version, "kind": rt.kind, **obj}
        created: dict[str, Any] = await self.request("POST", self._path(rt, None, namespace), body=body)
        return created

    async def update(
        self, rt: ResourceType, obj: Mapping[str, Any], *, subresource: str | None = None
    ) -> dict[str, Any]:
        """PUT of the whole object (its resourceVersion makes it a compare-and-swap)."""
        meta = obj["metadata"]
        path = self._path(rt, meta["name"], meta.get("namespace"), subresource)
        updated: dict[str, Any] = await self.request("PUT", path, body=obj)
        return updated

    async def patch(
        self,
        rt: ResourceType,
        name: str,
        patch: dict[str, Any] | list[Any],
        *,
        namespace: str | None = None,
        patch_type: PatchType = "merge",
        subresource: str | None = None,
    ) -> dict[str, Any]:
        path = self._path(rt, name, namespace, subresource)
        patched: dict[str, Any] = await self.request(
            "PATCH", path, body=patch, content_type=_PATCH_CONTENT_TYPES[patch_type]
        )
        return patched

    async def delete(
        self,
        rt: ResourceType,
        name: str,
        *,
        namespace: str | None = None,
        propagation_policy: str | None = None,
        grace_period_seconds: int | None = None,
        preconditions: Mapping[str, str] | None = None,
    ) -> dict[str, Any] | None:
        """Delete; the object when it lingers (finalizers, grace), None when the server answers a Status."""
        options: dict[str, Any] = {"kind": "DeleteOptions", "apiVersion": "v1"}
        if propagation_policy is not None:
            options["propagationPolicy"] = propagation_policy
        if grace_period_seconds is not None:
            options["gracePeriodSeconds"] = grace_period_seconds
        if preconditions:
            options["preconditions"] = dict(preconditions)
        answer = await self.request("DELETE", self._path(rt, name, namespace), body=options)
        return None if not answer or answer.get("kind") == "Status" else dict(answer)

    async def bind(self, *, namespace: str, pod_name: str, node_name: str) -> None:
        """POST pods/<name>/binding: the scheduler's one write."""
        binding = {
            "apiVersion": "v1",
            "kind": "Binding",
            "metadata": {"name": pod_name, "namespace": namespace},
            "target": {"apiVersion": "v1", "kind": "Node", "name": node_name},
        }
        await self.request("POST", self._path(resource("pods"), pod_name, namespace, "binding"), body=binding)

    async def watch(
        self,
        rt: ResourceType,
        *,
        namespace: str | None = None,
        resource_version: str,
        label_selector: str | None = None,
        field_selector: str | None = None,
        timeout_seconds: int | None = None,
    ) -> AsyncIterator[tuple[str, dict[str, Any]]]:
        """(type, object) events from `resource_version` on, BOOKMARKs included, until the stream ends."""
        params = {
            "watch": "true",
            "allowWatchBookmarks": "true",
            "resourceVersion": resource_version,
            **self._selectors(label_selector, field_selector),
        }
        if timeout_seconds is not None:
            params["timeoutSeconds"] = str(timeout_seconds)
        timeout = aiohttp.ClientTimeout(total=None, sock_connect=10, sock_read=None)
        async with self.session.get(
            self.server + self._path(rt, None, namespace),
            params=params,
            timeout=timeout,
            headers={"Accept": "application/json"},
        ) as resp:
            if resp.status >= 300:
                raise _status_error(resp.status, await resp.read())
            buffer = b""
            async for chunk in resp.content.iter_any():
                buffer += chunk
                *lines, buffer = buffer.split(b"\n")
                for line in lines:
                    if line.strip():
                        yield self._watch_event(rt, line)

    @staticmethod
    def _watch_event(rt: ResourceType, line: bytes) -> tuple[str, dict[str, Any]]:
        event = json.loads(line)
        type_, obj = event["type"], event["object"]
        if type_ == "ERROR":
            code = int(obj.get("code") or 500)
            raise _status_error(code, json.dumps(obj).encode())
        if type_ != "BOOKMARK":
            obj.setdefault("kind", rt.kind)
            obj.setdefault("apiVersion", rt.api_version)
        return type_, obj
