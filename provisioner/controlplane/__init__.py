"""What runs on the cluster: the API server (the only door), its etcd store, and the loops behind it.

Layers point one way: controllers, scheduler and agent -> client -> HTTP -> apiserver -> store -> etcd.
"""
