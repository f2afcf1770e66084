"""The node agent (the kubelet's job): registers the Node, heartbeats, runs bound pods as real processes.

Ownership and concurrency model: one process per node, one asyncio loop. A pod informer restricted to
`spec.nodeName=<node>` feeds one `PodWorker` task per pod key; nothing else touches a pod's processes.
Each container runs under a tiny `shim` process in its own session, so containers outlive an agent
restart and the next agent adopts them from the on-disk runtime state under `--root`. Pods use the
host network: podIP is the node address.
"""
