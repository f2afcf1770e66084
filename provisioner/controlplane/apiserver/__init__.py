"""A Kubernetes-compatible API server: HTTPS, authn, RBAC, validation, persistence in etcd, watch.

One aiohttp application per process (`server.run`); every request is handled on the event loop and
nothing blocks it. Several processes over one etcd cluster behave as one, because every get and
list reads etcd, every write is a compare-and-swap there, and resourceVersions are etcd revisions.
Watches are served from one shared etcd watch per process (`store.WatchCache`), and authorization
and namespace checks read in-memory mirrors kept current by that same watch.

Modules: `app` (routing, authn/authz, Status errors), `requestinfo` (what a request touches),
`registry` (verb semantics over the store), `watch` (event streams), `subresources` (scale, binding,
log), `negotiation` (bodies in, Tables out), `paging`, `discovery`; schema-driven `defaults`,
`validation`, `openapi`, `tables`; `patch`, `selectors`; `authn`, `rbac`.
"""
