"""Shared client machinery for everything that runs against the API server (never etcd).

Ownership and concurrency model: one `ApiClient` (one aiohttp session) per process, one
`SharedInformer` per resource type per process (via `InformerFactory`) whose cache is read-only and
shared by all loops, and per-loop `WorkQueue`s of keys. Everything runs on one asyncio event loop;
informer handlers only enqueue keys, workers reconcile from the cache and write through the API.
"""

from provisioner.controlplane.client.api import ApiClient, ApiStatusError, WatchExpired, object_key, resource
from provisioner.controlplane.client.events import EventRecorder
from provisioner.controlplane.client.informer import CacheMutationError, InformerFactory, SharedInformer
from provisioner.controlplane.client.leaderelection import LeaderElector
from provisioner.controlplane.client.workqueue import ExponentialBackoff, WorkQueue

__all__ = [
    "ApiClient",
    "ApiStatusError",
    "CacheMutationError",
    "EventRecorder",
    "ExponentialBackoff",
    "InformerFactory",
    "LeaderElector",
    "SharedInformer",
    "WatchExpired",
    "WorkQueue",
    "object_key",
    "resource",
]
