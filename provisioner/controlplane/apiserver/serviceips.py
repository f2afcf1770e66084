"""Service cluster IPs: one allocation record per address in etcd, claimed by compare-and-swap.

Every API server over the same etcd allocates from the same range without coordination beyond
etcd: an address is taken when `/registry/ranges/serviceips/<ip>` exists, and creating that key is
a CAS that exactly one writer wins. A record names the Service (and its uid) that owns it, so undoing
a claim after a failed write never frees an address another Service holds. Free addresses are
found by random probing (the range is large and sparsely used), then by one scan of the records.
The range's first address is kept for the `kubernetes` Service, as kube-apiserver does.

A crash between claiming an address and storing its Service leaves an orphan record: the address
stays unused until the record is removed by hand.
"""

from __future__ import annotations

import contextlib
import ipaddress
import random
from dataclasses import dataclass
from typing import Any

from provisioner.controlplane.apiserver.defaults import service_needs_cluster_ip
from provisioner.controlplane.apiserver.status import ApiError, FieldError, invalid
from provisioner.controlplane.store import AlreadyExists, Conflict, KeyNotFound, Store

__all__ = ["DEFAULT_SERVICE_CIDR", "Claim", "ServiceIPs"]

DEFAULT_SERVICE_CIDR = "10.96.0.0/12"
_PREFIX = "/registry/ranges/serviceips/"
_RANDOM_PROBES = 16

Obj = dict[str, Any]


@dataclass(frozen=True)
class Claim:
    """An address this request took, and the record's revision (to undo exactly that claim)."""

    ip: str
    rev: int


def _owner(service: Obj) -> Obj:
    meta = service.get("metadata") or {}
    return {"service": f"{meta.get('namespace', '')}/{meta.get('name', '')}", "uid": meta.get("uid", "")}


def _rejected(service: Obj, message: str) -> ApiError:
    name = (service.get("metadata") or {}).get("name", "")
    return invalid(group="", kind="Service", name=name, errors=[FieldError("spec.clusterIP", message)])


def _cluster_ip(service: Obj) -> str:
    value = (service.get("spec") or {}).get("clusterIP")
    return value if isinstance(value, str) else ""


class ServiceIPs:
    """Claims and releases cluster IPs for Services, in `cidr` (IPv4 or IPv6)."""

    def __init__(self, store: Store, *, cidr: str = DEFAULT_SERVICE_CIDR) -> None:
        self._store = store
        self._network = ipaddress.ip_network(cidr)
        if self._network.num_addresses < 8:
            raise ValueError(f"service CIDR {cidr} is too small")
        self._random = random.Random()

    @property
    def first(self) -> str:
        """The address of the `kubernetes` Service."""
        return str(self._network.network_address + 1)

    def _usable(self, ip: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
        return ip in self._network and ip not in (self._network.network_address, self._network.broadcast_address)

    async def assign(self, service: Obj, *, old: Obj | None, dry_run: bool) -> Claim | None:
        """Fill `spec.clusterIP` before defaulting: carried over on update, else claimed when one is needed.

        Returns the claim this call made (None when it claimed nothing); the caller undoes it if the
        write then fails. A requested address outside the range or already taken is a 422 naming
        `spec.clusterIP`.
        """
        spec = service.get("spec")
        if not isinstance(spec, dict):
            return None
        before = _cluster_ip(old) if old is not None else ""
        if old is not None and spec.get("type") != "ExternalName" and not spec.get("clusterIP"):
            ips = spec.get("clusterIPs")
            carried = ips[0] if isinstance(ips, list) and ips and isinstance(ips[0], str) else before
            if carried:
                spec["clusterIP"] = carried
        if before:
            return None  # an existing address is immutable (validation reports a change) and already held
        requested = _cluster_ip(service)
        if requested == "None" or (not requested and not service_needs_cluster_ip(service)):
            return None
        if requested:
            return await self._claim_requested(service, requested, dry_run=dry_run)
        claim = await self._claim_free(service, dry_run=dry_run)
        spec["clusterIP"] = claim.ip
        return claim

    async def _claim_requested(self, service: Obj, requested: str, *, dry_run: bool) -> Claim:
        try:
            ip = ipaddress.ip_address(requested)
        except ValueError:
            raise _rejected(service, f'Invalid value: "{requested}": must be a valid IP address or "None"') from None
        if not self._usable(ip):
            raise _rejected(service, f'Invalid value: "{requested}": provided IP is not in the valid range. '
                                     f"The range of valid IPs is {self._network}")
        claim = await self._try(service, str(ip), dry_run=dry_run)
        if claim is None:
            raise _rejected(service, f'Invalid value: "{requested}": provided IP is already allocated')
        return claim

    async def _claim_free(self, service: Obj, *, dry_run: bool) -> Claim:
        size = self._network.num_addresses
        for _ in range(_RANDOM_PROBES):
            ip = self._network.network_address + self._random.randrange(2, size - 1)
            claim = await self._try(service, str(ip), dry_run=dry_run)
            if claim is not None:
                return claim
        entries, _, _ = await self._store.list(_PREFIX)
        taken = {entry.key.removeprefix(_PREFIX) for entry in entries}
        for offset in range(2, size - 1):
            ip = str(self._network.network_address + offset)
            if ip not in taken and (claim := await self._try(service, ip, dry_run=dry_run)) is not None:
                return claim
        raise ApiError(500, "InternalError", f"failed to allocate a service IP: range {self._network} is full")

    async def _try(self, service: Obj, ip: str, *, dry_run: bool) -> Claim | None:
        if dry_run:
            return None if await self._store.get(_PREFIX + ip) else Claim(ip, 0)
        try:
            return Claim(ip, await self._store.create(_PREFIX + ip, _owner(service)))
        except AlreadyExists:
            return None

    async def undo(self, claim: Claim) -> None:
        """Free an address this request claimed, unless it was a dry run."""
        if claim.rev:
            with contextlib.suppress(Conflict, KeyNotFound):  # someone else's record now: not ours to free
                await self._store.delete(_PREFIX + claim.ip, expected_rev=claim.rev)

    async def release(self, service: Obj) -> None:
        """Free the address a deleted (or no longer addressed) Service held, if its record is still the Service's."""
        ip = _cluster_ip(service)
        if not ip or ip == "None":
            return
        found = await self._store.get(_PREFIX + ip)
        if found is not None and found[0].get("uid") == _owner(service)["uid"]:
            await self.undo(Claim(ip, found[1]))
