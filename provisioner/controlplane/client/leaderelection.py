"""Leader election on a coordination.k8s.io/v1 Lease, so one replica of a component acts at a time.

Every candidate polls the Lease every `retry_period`. A Lease held by someone else counts as expired
when its resourceVersion has not changed for `lease_duration` seconds of *our* monotonic clock (as
client-go does), so clock skew between hosts does not matter. Writes are compare-and-swap on the
resourceVersion, so two candidates never both win. The leader renews every `retry_period`; if it
cannot renew within `renew_deadline` it stops leading (its work is cancelled) and `run` returns, and
the process should exit. On a clean shutdown the leader releases the Lease so a standby takes over at
once.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

import aiohttp

from provisioner.controlplane.client.api import ApiClient, ApiStatusError, resource

__all__ = ["LeaderElector"]

log = logging.getLogger(__name__)

LEASES = resource("leases")


class _LeadershipLost(Exception):
    pass


def _micro_time() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class LeaderElector:
    """Campaign for Lease `namespace/lease_name` as `identity`; `run` leads while it holds it."""

    def __init__(
        self,
        client: ApiClient,
        *,
        lease_name: str,
        namespace: str = "kube-system",
        identity: str,
        lease_duration: float = 15,
        renew_deadline: float = 10,
        retry_period: float = 2,
    ) -> None:
        if not retry_period < renew_deadline < lease_duration:
            raise ValueError("need retry_period < renew_deadline < lease_duration")
        self.client = client
        self.lease_name = lease_name
        self.namespace = namespace
        self.identity = identity
        self.lease_duration = lease_duration
        self.renew_deadline = renew_deadline
        self.retry_period = retry_period
        self.is_leader = False
        self._observed_version = ""
        self._observed_at = 0.0

    async def run(
        self,
        on_started_leading: Callable[[], Awaitable[None]],
        on_stopped_leading: Callable[[], None] | None = None,
    ) -> None:
        """Wait to win the Lease, then run `on_started_leading` until it ends or leadership is lost."""
        while not await self._attempt():
            await asyncio.sleep(self.retry_period * (1 + random.random() * 0.2))
        self.is_leader = True
        log.info("%s became leader of %s/%s", self.identity, self.namespace, self.lease_name)
        try:
            async with asyncio.TaskGroup() as group:
                renewing = group.create_task(self._keep_renewing(), name="lease-renewal")

                async def lead() -> None:
                    await on_started_leading()
                    renewing.cancel()

                group.create_task(lead(), name="leading")
        except* _LeadershipLost:
            log.error("%s lost leadership of %s/%s", self.identity, self.namespace, self.lease_name)
        finally:
            self.is_leader = False
            await self._release()
            if on_stopped_leading is not None:
                on_stopped_leading()

    async def _keep_renewing(self) -> None:
        last_renewal = time.monotonic()
        while True:
            await asyncio.sleep(self.retry_period)
            try:
                async with asyncio.timeout(self.retry_period):
                    renewed = await self._attempt()
            except TimeoutError:
                renewed = False
            if renewed:
                last_renewal = time.monotonic()
            elif time.monotonic() - last_renewal > self.renew_deadline:
                raise _LeadershipLost()

    async def _attempt(self) -> bool:
        """Acquire or renew once; False when someone else holds an unexpired Lease or we lost a race."""
        try:
            return await self._try_acquire_or_renew()
        except (ApiStatusError, aiohttp.ClientError, OSError, TimeoutError) as exc:
            log.warning("lease %s/%s: %s", self.namespace, self.lease_name, exc)
            return False

    async def _try_acquire_or_renew(self) -> bool:
        now = _micro_time()
        try:
            lease = await self.client.get(LEASES, self.lease_name, namespace=self.namespace)
        except ApiStatusError as exc:
            if not exc.not_found:
                raise
            return await self._create(now)
        spec: dict[str, Any] = dict(lease.get("spec") or {})
        version = lease["metadata"].get("resourceVersion", "")
        if version != self._observed_version:
            self._observed_version, self._observed_at = version, time.monotonic()
        holder = spec.get("holderIdentity") or ""
        expired = time.monotonic() - self._observed_at > float(spec.get("leaseDurationSeconds") or 0)
        if holder and holder != self.identity and not expired:
            return False
        if holder != self.identity:
            spec["acquireTime"] = now
            spec["leaseTransitions"] = int(spec.get("leaseTransitions") or 0) + 1
        spec.update(holderIdentity=self.identity, leaseDurationSeconds=int(self.lease_duration), renewTime=now)
        try:
            updated = await self.client.update(LEASES, {**lease, "spec": spec})
        except ApiStatusError as exc:
            if exc.conflict:
                return False
            raise
        self._observed_version, self._observed_at = updated["metadata"]["resourceVersion"], time.monotonic()
        return True

    async def _create(self, now: str) -> bool:
        lease = {
            "metadata": {"name": self.lease_name, "namespace": self.namespace},
            "spec": {
                "holderIdentity": self.identity,
                "leaseDurationSeconds": int(self.lease_duration),
                "acquireTime": now,
                "renewTime": now,
                "leaseTransitions": 0,
            },
        }
        try:
            created = await self.client.create(LEASES, lease)
        except ApiStatusError as exc:
            if exc.code == 409:  # AlreadyExists: another candidate created it first
                return False
            raise
        self._observed_version, self._observed_at = created["metadata"]["resourceVersion"], time.monotonic()
        return True

    async def _release(self) -> None:
        """Hand the Lease back (best effort) so a standby does not wait for it to expire."""
        try:
            async with asyncio.timeout(self.retry_period):
                lease = await self.client.get(LEASES, self.lease_name, namespace=self.namespace)
                spec = dict(lease.get("spec") or {})
                if spec.get("holderIdentity") != self.identity:
                    return
                spec.update(holderIdentity="", leaseDurationSeconds=1, renewTime=_micro_time())
                await self.client.update(LEASES, {**lease, "spec": spec})
        except (ApiStatusError, aiohttp.ClientError, OSError, TimeoutError) as exc:
            log.warning("releasing lease %s/%s failed: %s", self.namespace, self.lease_name, exc)
