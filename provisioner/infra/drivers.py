"""Registration of the local cloud's drivers with libcloud's provider registries.

After `register_drivers()`, `libcloud.compute.providers.get_driver("local")` (and `"baremetal"`),
`libcloud.loadbalancer.providers.get_driver("haproxy")` and `libcloud.storage.providers.get_driver("local")`
return our classes, so callers pick a provider by name like any libcloud provider. Safe to call repeatedly.
"""

from __future__ import annotations

from libcloud.compute import providers as compute
from libcloud.loadbalancer import providers as loadbalancer
from libcloud.storage import providers as storage
from libcloud.storage.types import Provider as StorageProvider

__all__ = ["BAREMETAL", "COMPUTE", "LOADBALANCER", "register_drivers"]

COMPUTE = "local"
BAREMETAL = "baremetal"
LOADBALANCER = "haproxy"


def register_drivers() -> None:
    if COMPUTE not in compute.DRIVERS:
        compute.set_driver(COMPUTE, "provisioner.infra.local", "LocalNodeDriver")
    if BAREMETAL not in compute.DRIVERS:
        compute.set_driver(BAREMETAL, "provisioner.infra.baremetal", "BareMetalNodeDriver")
    if LOADBALANCER not in loadbalancer.DRIVERS:
        loadbalancer.set_driver(LOADBALANCER, "provisioner.infra.haproxy", "HaproxyLBDriver")
    # libcloud already registers LocalStorageDriver as storage provider "local"; make sure it is importable.
    storage.get_driver(StorageProvider.LOCAL)
