"""A Kubernetes-compatible API server: HTTPS, authn, RBAC, validation, persistence in etcd, watch.

One aiohttp application per process; every request is handled on the event loop and all blocking
work (none expected) is pushed to threads. Several processes over one etcd cluster behave as one,
because every read of state goes to etcd and resourceVersions are etcd revisions.
"""
