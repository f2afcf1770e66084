"""Typed get/list/CAS/delete/watch of JSON values in etcd.

Every write is a transaction guarded by a compare (key absent, or mod_revision equal to what the
caller read), so a write that failed during an etcd leader election can be retried safely: on a
retry that loses its compare, the stored value is checked, and if it is the one we wrote, the
first attempt had in fact landed. Values are stored as compact JSON; revisions are etcd revisions.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Literal, TypeVar

import grpc
from aetcd import rpc, utils
from tenacity import AsyncRetrying, retry_if_exception_type, stop_after_delay, wait_exponential

from provisioner.controlplane.store.errors import AlreadyExists, Compacted, Conflict, KeyNotFound, Unavailable
from provisioner.controlplane.store.etcd import TlsEtcdClient

__all__ = ["Entry", "Store", "WatchEvent", "decode", "encode"]

log = logging.getLogger(__name__)
T = TypeVar("T")

_RETRYABLE = {grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED}


_ENCODER = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False)  # json.dumps(**options) builds one per call


def encode(value: dict[str, Any]) -> bytes:
    return _ENCODER.encode(value).encode()


def decode(data: bytes) -> dict[str, Any]:
    value: dict[str, Any] = json.loads(data)
    return value


@dataclass(frozen=True)
class Entry:
    """One stored value and the revision that last modified it."""

    key: str
    value: dict[str, Any]
    rev: int


@dataclass(frozen=True)
class WatchEvent:
    """A change at revision `rev`; PROGRESS carries no key and says the watch has seen up to `rev`."""

    type: Literal["PUT", "DELETE", "PROGRESS"]
    rev: int
    key: str = ""
    value: dict[str, Any] | None = None  # new value (PUT)
    prev: dict[str, Any] | None = None  # value before the change, when etcd still has it
    # Serialized forms computed once and shared by every watcher of this event (see apiserver.watch).
    memo: dict[str, bytes] = field(default_factory=dict, compare=False, repr=False)


def _unavailable(error: grpc.aio.AioRpcError) -> Exception:
    if error.code() in _RETRYABLE or "leader" in (error.details() or ""):
        return Unavailable(f"etcd: {error.code().name}: {error.details()}")
    return error


class Store:
    """Access to etcd for the API server; `retry_for` bounds how long a write rides out an election."""

    def __init__(self, client: TlsEtcdClient, *, retry_for: float = 15.0) -> None:
        self._client = client
        self._retry_for = retry_for

    async def close(self) -> None:
        await self._client.close()

    async def _call(self, op: Callable[[], Awaitable[T]]) -> T:
        """Run one RPC, retrying only on transient unavailability (callers make retries safe)."""
        if self._client.kvstub is None:
            await self._client.connect()
        try:
            return await op()  # the common case, without building a retry loop
        except grpc.aio.AioRpcError as error:
            if not isinstance(_unavailable(error), Unavailable):
                raise
        async for attempt in AsyncRetrying(
            retry=retry_if_exception_type(Unavailable),
            stop=stop_after_delay(self._retry_for),
            wait=wait_exponential(multiplier=0.05, max=1.0),
            reraise=True,
        ):
            with attempt:
                await self._client.connect()
                try:
                    return await op()
                except grpc.aio.AioRpcError as error:
                    raise _unavailable(error) from error
        raise AssertionError("unreachable")

    async def ping(self, *, timeout: float = 2.0) -> None:
        """One serializable read, without retries: raises Unavailable when no member answers in time."""
        await self._client.connect()
        request = rpc.RangeRequest(key=b"\0", count_only=True, limit=1, serializable=True)
        try:
            await self._client.kvstub.Range(request, timeout=timeout)
        except grpc.aio.AioRpcError as error:
            raise Unavailable(f"etcd: {error.code().name}: {error.details()}") from error

    async def current_revision(self) -> int:
        request = rpc.RangeRequest(key=b"\0", count_only=True, limit=1)
        response = await self._call(lambda: self._client.kvstub.Range(request, timeout=self._client._timeout))
        return int(response.header.revision)

    async def get(self, key: str) -> tuple[dict[str, Any], int] | None:
        request = rpc.RangeRequest(key=key.encode())
        response = await self._call(lambda: self._client.kvstub.Range(request, timeout=self._client._timeout))
        if not response.kvs:
            return None
        kv = response.kvs[0]
        return decode(kv.value), int(kv.mod_revision)

    async def list(
        self, prefix: str, *, limit: int | None = None, start_after: str | None = None, revision: int | None = None
    ) -> tuple[list[Entry], int, bool]:
        """Entries under `prefix` in key order at `revision` (default: latest): (entries, revision, more)."""
        start = (start_after.encode() + b"\0") if start_after else prefix.encode()
        request = rpc.RangeRequest(
            key=start, range_end=utils.prefix_range_end(prefix.encode()), limit=limit or 0, revision=revision or 0
        )

        async def op() -> Any:
            try:
                return await self._client.kvstub.Range(request, timeout=self._client._timeout)
            except grpc.aio.AioRpcError as error:
                if error.code() == grpc.StatusCode.OUT_OF_RANGE:
                    raise Compacted(revision or 0, 0) from error
                raise

        response = await self._call(op)
        entries = [Entry(kv.key.decode(), decode(kv.value), int(kv.mod_revision)) for kv in response.kvs]
        return entries, int(response.header.revision), bool(response.more)

    async def _txn(self, request: rpc.TxnRequest) -> Any:
        return await self._call(lambda: self._client.kvstub.Txn(request, timeout=self._client._timeout))

    async def create(self, key: str, value: dict[str, Any]) -> int:
        """Store `value` at `key` if absent; returns the new revision."""
        k, data = key.encode(), encode(value)
        request = rpc.TxnRequest(
            compare=[rpc.Compare(key=k, target=rpc.Compare.CREATE, result=rpc.Compare.EQUAL, create_revision=0)],
            success=[rpc.RequestOp(request_put=rpc.PutRequest(key=k, value=data))],
            failure=[rpc.RequestOp(request_range=rpc.RangeRequest(key=k))],
        )
        response = await self._txn(request)
        if response.succeeded:
            return int(response.header.revision)
        kvs = response.responses[0].response_range.kvs
        if kvs[0].value == data:
            return int(kvs[0].mod_revision)  # an attempt cut off by an election had landed
        raise AlreadyExists(key)

    async def update(self, key: str, value: dict[str, Any], *, expected_rev: int) -> int:
        """Replace `key` if it was last modified at `expected_rev`; raise Conflict otherwise."""
        k, data = key.encode(), encode(value)
        request = rpc.TxnRequest(
            compare=[rpc.Compare(key=k, target=rpc.Compare.MOD, result=rpc.Compare.EQUAL, mod_revision=expected_rev)],
            success=[rpc.RequestOp(request_put=rpc.PutRequest(key=k, value=data))],
            failure=[rpc.RequestOp(request_range=rpc.RangeRequest(key=k))],
        )
        response = await self._txn(request)
        if response.succeeded:
            return int(response.header.revision)
        kvs = response.responses[0].response_range.kvs
        if not kvs:
            raise KeyNotFound(key)
        if kvs[0].value == data:
            return int(kvs[0].mod_revision)  # an attempt cut off by an election had landed
        raise Conflict(key, int(kvs[0].mod_revision))

    async def delete(self, key: str, *, expected_rev: int | None = None) -> tuple[dict[str, Any], int]:
        """Delete `key` (if still at `expected_rev` when given); returns (last value, deletion revision)."""
        k = key.encode()
        compare = (
            [rpc.Compare(key=k, target=rpc.Compare.MOD, result=rpc.Compare.EQUAL, mod_revision=expected_rev)]
            if expected_rev is not None
            else [rpc.Compare(key=k, target=rpc.Compare.CREATE, result=rpc.Compare.GREATER, create_revision=0)]
        )
        request = rpc.TxnRequest(
            compare=compare,
            success=[rpc.RequestOp(request_delete_range=rpc.DeleteRangeRequest(key=k, prev_kv=True))],
            failure=[rpc.RequestOp(request_range=rpc.RangeRequest(key=k))],
        )
        response = await self._txn(request)
        if response.succeeded:
            prev = response.responses[0].response_delete_range.prev_kvs[0]
            return decode(prev.value), int(response.header.revision)
        kvs = response.responses[0].response_range.kvs
        if not kvs:
            raise KeyNotFound(key)
        raise Conflict(key, int(kvs[0].mod_revision))

    async def compact(self, revision: int) -> None:
        request = rpc.CompactionRequest(revision=revision, physical=True)
        await self._call(lambda: self._client.kvstub.Compact(request, timeout=self._client._timeout))

    async def watch(self, prefix: str, *, start_revision: int) -> AsyncIterator[WatchEvent]:
        """Changes under `prefix` from `start_revision` (inclusive), in revision order, until cancelled.

        Raises Compacted when etcd no longer has `start_revision`, Unavailable when the stream breaks;
        the caller resumes from the last revision it saw + 1.
        """
        await self._client.connect()
        create = rpc.WatchCreateRequest(
            key=prefix.encode(), range_end=utils.prefix_range_end(prefix.encode()),
            start_revision=start_revision, prev_kv=True, progress_notify=True,
        )
        done = asyncio.Event()

        async def requests() -> AsyncIterator[rpc.WatchRequest]:
            yield rpc.WatchRequest(create_request=create)
            await done.wait()

        call = rpc.WatchStub(self._client.channel).Watch(requests())
        try:
            async for response in call:
                if response.compact_revision:
                    raise Compacted(start_revision, int(response.compact_revision))
                if response.canceled:
                    raise Unavailable(f"etcd cancelled the watch: {response.cancel_reason}")
                if not response.events:
                    if not response.created:
                        yield WatchEvent("PROGRESS", int(response.header.revision))
                    continue
                for ev in response.events:
                    kv = ev.kv
                    prev = decode(ev.prev_kv.value) if ev.HasField("prev_kv") and ev.prev_kv.value else None
                    if ev.type == rpc.Event.PUT:
                        yield WatchEvent("PUT", int(kv.mod_revision), kv.key.decode(), decode(kv.value), prev)
                    else:
                        yield WatchEvent("DELETE", int(kv.mod_revision), kv.key.decode(), None, prev)
            raise Unavailable("etcd closed the watch stream")
        except grpc.aio.AioRpcError as error:
            raise Unavailable(f"etcd watch broke: {error.code().name}: {error.details()}") from error
        finally:
            done.set()
            call.cancel()
