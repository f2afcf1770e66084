"""Object storage for local clusters: libcloud's LocalStorageDriver, one container per cluster for backups.

The driver stores objects as files under `<state root>/storage/` and locks them with `fasteners`; nothing
here re-implements it, this module only decides where it lives and how containers are named.
"""

from __future__ import annotations

from pathlib import Path

from libcloud.common.types import LibcloudError
from libcloud.storage.base import Container
from libcloud.storage.drivers.local import LocalStorageDriver
from libcloud.storage.types import ContainerDoesNotExistError

from provisioner.infra.cloudstate import default_state_root

__all__ = ["backup_container", "local_storage"]


def local_storage(state_dir: Path | None = None) -> LocalStorageDriver:
    root = (state_dir or default_state_root()) / "storage"
    root.mkdir(parents=True, exist_ok=True)
    return LocalStorageDriver(str(root))


def backup_container(driver: LocalStorageDriver, cluster: str) -> Container:
    """The cluster's backup container (`<cluster>-backups`), created on first use."""
    name = f"{cluster}-backups"
    try:
        return driver.get_container(name)
    except (ContainerDoesNotExistError, LibcloudError):
        return driver.create_container(name)
