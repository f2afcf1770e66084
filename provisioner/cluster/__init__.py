"""Clusters on real machines: `provision up/plan/status/down/ssh/logs` for the local cloud and bare metal.

Synchronous and single-threaded apart from small thread pools for per-machine SSH probes; one `up` or
`down` per cluster at a time (a file lock). Machines come from libcloud drivers (`machines.py`), their
configuration is rendered here and applied by Ansible roles (`provisioner.configure`).
"""
