"""The local cloud's machine sizes: what a VM gets from QEMU (vCPUs, memory, root disk)."""

from __future__ import annotations

from dataclasses import dataclass

from provisioner.errors import ProvisionerError

__all__ = ["SIZES", "Size", "size_named"]


@dataclass(frozen=True)
class Size:
    """A QEMU machine shape; `disk_gb` is the root overlay's size (the guest grows its filesystem to it)."""

    name: str
    vcpus: int
    ram_mb: int
    disk_gb: int


SIZES: dict[str, Size] = {
    s.name: s
    for s in (
        Size(name="tiny", vcpus=1, ram_mb=512, disk_gb=4),
        Size(name="small", vcpus=1, ram_mb=1024, disk_gb=8),
        Size(name="medium", vcpus=2, ram_mb=2048, disk_gb=16),
        Size(name="large", vcpus=2, ram_mb=4096, disk_gb=32),
    )
}


def size_named(name: str) -> Size:
    try:
        return SIZES[name]
    except KeyError:
        raise ProvisionerError(f"unknown local VM size {name!r}", hint=f"use one of: {', '.join(SIZES)}") from None
