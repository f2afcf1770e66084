"""The only code that talks to etcd: typed get/list/CAS/delete/watch over JSON values.

`TlsEtcdClient` is the channel (mutual TLS, failover across members), `Store` the operations,
`WatchCache` the one shared watch per process that API watchers and local mirrors subscribe to.

Owned by the API server: no other component imports this package. Concurrency model: everything is
asyncio on one loop; one gRPC channel carries all calls; `WatchCache.run()` and each
`PrefixMirror.run()` are root tasks of the API server process.
"""

from provisioner.controlplane.store.errors import (
    AlreadyExists,
    Compacted,
    Conflict,
    KeyNotFound,
    StoreError,
    Unavailable,
)
from provisioner.controlplane.store.etcd import TlsEtcdClient, grpc_target
from provisioner.controlplane.store.kv import Entry, Store, WatchEvent
from provisioner.controlplane.store.watchcache import PrefixMirror, WatchCache

__all__ = [
    "AlreadyExists",
    "Compacted",
    "Conflict",
    "Entry",
    "KeyNotFound",
    "PrefixMirror",
    "Store",
    "StoreError",
    "TlsEtcdClient",
    "Unavailable",
    "WatchCache",
    "WatchEvent",
    "grpc_target",
]
