"""The controller manager: small independent control loops, one module each, registered by name.

Concurrency model: one process, one event loop, one `InformerFactory` (a read-only cache per resource
type shared by all loops). Informer handlers only enqueue keys into each loop's `WorkQueue`; each loop
runs a few workers that reconcile one key at a time from the cache (NotFound = deleted) and write
through the API server, status through the status subresource. Loops start only after the process
holds the `kube-system/kube-controller-manager` Lease and the caches have synced.
"""
