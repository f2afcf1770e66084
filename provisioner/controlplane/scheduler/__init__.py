"""The scheduler: picks a node for every pod that has none and binds it through `pods/binding`.

Ownership and concurrency model: one process, one asyncio loop. Informers on pods and nodes feed a
`SchedulerCache` (bound + assumed pods per node) and a `SchedulingQueue` of pod keys. Scheduling cycles
run one pod at a time against an immutable `Snapshot` of the cache; the chosen node is assumed at once
(so the next pod sees it) and the binding is written concurrently. Plugins are pure and never await.
"""
