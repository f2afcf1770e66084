"""Watch streams: chunked newline-delimited JSON events, resumable by resourceVersion.

A stream starts with ADDED events for every existing object when the client gives no
resourceVersion (or "0"), then follows the process-wide watch cache from the next revision. A
selector turns changes into ADDED/DELETED as objects enter or leave it, like kube-apiserver. A
revision etcd has compacted ends the stream with an ERROR event carrying a 410 Expired Status.
BOOKMARK events (when asked for) carry the last revision sent, a safe point to resume from.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from provisioner.controlplane.apiserver.registry import Registry, with_rv
from provisioner.controlplane.apiserver.resources import ResourceType
from provisioner.controlplane.apiserver.selectors import FieldSelector, LabelSelector
from provisioner.controlplane.apiserver.status import ApiError, status_body
from provisioner.controlplane.store import Compacted, StoreError, WatchCache, WatchEvent

__all__ = ["WatchRequest", "serve_watch"]

log = logging.getLogger(__name__)

Obj = dict[str, Any]
_DEFAULT_TIMEOUT = 1800.0
_END = object()


@dataclass(frozen=True)
class WatchRequest:
    rt: ResourceType
    namespace: str | None
    resource_version: str
    labels: LabelSelector | None
    fields: FieldSelector | None
    timeout: float | None
    bookmarks: bool
    render: Callable[[Obj], Obj] | None  # Table conversion, or None for the object itself


def _matches(w: WatchRequest, obj: Obj | None) -> bool:
    if obj is None:
        return False
    labels = (obj.get("metadata") or {}).get("labels") or {}
    return (w.labels is None or w.labels.matches(labels)) and (w.fields is None or w.fields.matches(obj))


def _translate(w: WatchRequest, event: WatchEvent) -> tuple[str, str] | None:
    """(API event type, "value" or "prev") for a store event as this watcher's selectors see it; None to skip."""
    if event.type == "PUT":
        now, before = _matches(w, event.value), _matches(w, event.prev)
        if now:
            return ("MODIFIED" if before else "ADDED"), "value"
        if before:
            return "DELETED", "prev"
        return None
    if event.type == "DELETE" and _matches(w, event.prev):
        return "DELETED", "prev"
    return None


def _object_of(event: WatchEvent, which: str) -> Obj:
    obj = event.value if which == "value" else event.prev
    assert obj is not None
    return with_rv(obj, event.rev)


def _encoded(event: WatchEvent, which: str) -> bytes:
    """The object's JSON, serialized once per event however many watchers send it."""
    data = event.memo.get(which)
    if data is None:
        data = event.memo[which] = json.dumps(_object_of(event, which), separators=(",", ":")).encode()
    return data


class _Stream:
    def __init__(self, response: web.StreamResponse, w: WatchRequest) -> None:
        self._response, self._w = response, w
        self.last_rv = 0

    async def send(self, kind: str, obj: Obj, rev: int) -> None:
        body = self._w.render(obj) if self._w.render is not None else obj
        line = json.dumps({"type": kind, "object": body}, separators=(",", ":")).encode() + b"\n"
        await self._response.write(line)
        self.last_rv = max(self.last_rv, rev)

    async def send_event(self, kind: str, event: WatchEvent, which: str) -> None:
        if self._w.render is not None:
            await self.send(kind, _object_of(event, which), event.rev)
            return
        await self._response.write(b'{"type":"' + kind.encode() + b'","object":' + _encoded(event, which) + b"}\n")
        self.last_rv = max(self.last_rv, event.rev)

    async def bookmark(self) -> None:
        obj = {"kind": self._w.rt.kind, "apiVersion": self._w.rt.api_version,
               "metadata": {"resourceVersion": str(self.last_rv)}}
        await self._response.write(json.dumps({"type": "BOOKMARK", "object": obj}).encode() + b"\n")

    async def error(self, code: int, reason: str, message: str) -> None:
        obj = status_body(code=code, reason=reason, message=message)
        await self._response.write(json.dumps({"type": "ERROR", "object": obj}).encode() + b"\n")


async def serve_watch(request: web.Request, w: WatchRequest, *, registry: Registry, cache: WatchCache,
                      bookmark_interval: float) -> web.StreamResponse:
    if w.resource_version not in ("", "0") and not w.resource_version.isdigit():
        raise ApiError(400, "BadRequest", f"resourceVersion must be a number, not {w.resource_version!r}")
    response = web.StreamResponse(headers={"Content-Type": "application/json", "Cache-Control": "no-cache"})
    response.enable_chunked_encoding()
    await response.prepare(request)
    stream = _Stream(response, w)
    if w.resource_version in ("", "0"):
        listed = await registry.list(w.rt, w.namespace, labels=w.labels, fields=w.fields)
        for obj in listed.items:
            await stream.send("ADDED", obj, int(obj["metadata"]["resourceVersion"]))
        start = listed.revision + 1
    else:
        start = int(w.resource_version) + 1
    stream.last_rv = start - 1
    queue: asyncio.Queue[Any] = asyncio.Queue()

    async def pump() -> None:
        try:
            async for event in cache.events(w.rt.key_prefix(w.namespace), start_revision=start):
                queue.put_nowait(event)
        except StoreError as error:
            queue.put_nowait(error)
        queue.put_nowait(_END)

    pumper = asyncio.create_task(pump())
    loop = asyncio.get_running_loop()
    deadline = loop.time() + (w.timeout if w.timeout else _DEFAULT_TIMEOUT)
    next_bookmark = loop.time() + bookmark_interval
    try:
        while (now := loop.time()) < deadline:
            wait = deadline - now
            if w.bookmarks:
                wait = min(wait, max(next_bookmark - now, 0))
            try:
                item = await asyncio.wait_for(queue.get(), wait)
            except TimeoutError:
                if w.bookmarks and loop.time() >= next_bookmark:
                    await stream.bookmark()
                    next_bookmark = loop.time() + bookmark_interval
                continue
            if item is _END:
                break
            if isinstance(item, Compacted):
                await stream.error(410, "Expired", f"too old resource version: {start - 1} "
                                                   f"({item.compact_revision})")
                break
            if isinstance(item, StoreError):
                await stream.error(500, "InternalError", f"watch ended: {item}")
                break
            translated = _translate(w, item)
            if translated is not None:
                await stream.send_event(translated[0], item, translated[1])
    except ConnectionResetError:
        log.debug("watch client of %s went away", w.rt.plural)
    finally:
        pumper.cancel()
        with contextlib.suppress(asyncio.CancelledError, StoreError):
            await pumper
    with contextlib.suppress(ConnectionResetError):
        await response.write_eof()
    return response
