"""What every control loop shares: its context, its work queue, and the worker loop around `reconcile`.

A failed reconcile is retried with per-key exponential backoff (and given up, logged, after
`MAX_RETRIES`: the next change of the object enqueues it again); a success forgets the key's
failures. A reconcile that wants to look again later (a timer, not a failure) calls
`self.queue.add_after`.
"""

from __future__ import annotations

import abc
import asyncio
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

import aiohttp

from provisioner.controlplane.apiserver.resources import ResourceType
from provisioner.controlplane.client import (
    ApiClient,
    ApiStatusError,
    EventRecorder,
    InformerFactory,
    SharedInformer,
    WorkQueue,
    object_key,
)

__all__ = ["MAX_RETRIES", "Controller", "ControllerContext", "Settings"]

log = logging.getLogger(__name__)

MAX_RETRIES = 15
_EXPECTED = (ApiStatusError, aiohttp.ClientError, OSError, TimeoutError)

Obj = dict[str, Any]


@dataclass(frozen=True)
class Settings:
    """Tunables of the controller manager (flags of `python -m provisioner.controlplane.controllers`)."""

    node_monitor_grace_period: float = 40.0
    node_monitor_period: float = 5.0
    pod_eviction_timeout: float = 300.0
    pod_gc_period: float = 20.0
    pod_gc_quarantine: float = 40.0
    terminated_pod_gc_threshold: int = 12500
    workers: int = 2


@dataclass(frozen=True)
class ControllerContext:
    """What a loop is built from: the API client, the shared informers, the Event recorder, settings."""

    client: ApiClient
    informers: InformerFactory
    recorder: EventRecorder
    settings: Settings


class Controller(abc.ABC):
    """A control loop: handlers enqueue keys, `workers` coroutines reconcile them."""

    name: ClassVar[str]

    def __init__(self, ctx: ControllerContext) -> None:
        self.ctx = ctx
        self.client = ctx.client
        self.recorder = ctx.recorder
        self.queue: WorkQueue[str] = WorkQueue()

    def informer(self, rt: ResourceType) -> SharedInformer:
        return self.ctx.informers.informer(rt)

    def watch(self, rt: ResourceType, key_of: Callable[[Obj], list[str]]) -> SharedInformer:
        """Enqueue `key_of(obj)` for every add/update/delete of `rt` (old and new object on updates)."""
        informer = self.informer(rt)

        def add(obj: Obj) -> None:
            for key in key_of(obj):
                self.queue.add(key)

        def update(old: Obj, new: Obj) -> None:
            for key in {*key_of(old), *key_of(new)}:
                self.queue.add(key)

        informer.add_handler(on_add=add, on_update=update, on_delete=add)
        return informer

    @staticmethod
    def own_key(obj: Mapping[str, Any]) -> list[str]:
        return [object_key(obj)]

    async def delete_same(
        self,
        rt: ResourceType,
        obj: Mapping[str, Any],
        *,
        grace_period_seconds: int | None = None,
        propagation_policy: str | None = None,
    ) -> bool:
        """Delete `obj` only if it is still the object we judged (uid precondition: a namesake created since
        is left alone); False when it is already gone."""
        meta = obj["metadata"]
        try:
            await self.client.delete(
                rt,
                meta["name"],
                namespace=meta.get("namespace"),
                grace_period_seconds=grace_period_seconds,
                propagation_policy=propagation_policy,
                preconditions={"uid": meta["uid"]},
            )
        except ApiStatusError as exc:
            if not exc.not_found:
                raise
            return False
        return True

    @abc.abstractmethod
    async def reconcile(self, key: str) -> None:
        """Make the world match the desired state of `key`; idempotent; NotFound in the cache = deleted."""

    async def background(self) -> None:
        """Extra periodic work a loop needs next to its workers (none by default)."""
        return None

    async def run(self) -> None:
        """Wait for the caches, then run the workers until cancelled."""
        await self.ctx.informers.wait_for_sync()
        log.info("%s controller started", self.name)
        try:
            async with asyncio.TaskGroup() as group:
                group.create_task(self.background(), name=f"{self.name}:background")
                for n in range(self.ctx.settings.workers):
                    group.create_task(self._worker(), name=f"{self.name}:worker{n}")
        finally:
            self.queue.shutdown()

    async def _worker(self) -> None:
        while (key := await self.queue.get()) is not None:
            try:
                await self.reconcile(key)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                self._failed(key, exc)
            else:
                self.queue.forget(key)
            finally:
                self.queue.done(key)

    def _failed(self, key: str, exc: Exception) -> None:
        retries = self.queue.num_requeues(key)
        if retries >= MAX_RETRIES:
            log.error("%s: giving up on %s after %d retries: %s", self.name, key, retries, exc)
            self.queue.forget(key)
            return
        level = logging.INFO if isinstance(exc, ApiStatusError) and exc.conflict else logging.WARNING
        log.log(
            level,
            "%s: reconcile of %s failed (retry %d): %s",
            self.name,
            key,
            retries + 1,
            exc,
            exc_info=not isinstance(exc, _EXPECTED),
        )
        self.queue.add_rate_limited(key)
