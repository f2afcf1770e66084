"""Where machines, load balancers and storage come from: libcloud drivers, ours registered next to libcloud's.

The local cloud is three drivers behind libcloud's interfaces: compute `local` (QEMU VMs from a locally built
image, `local.py`), load balancer `haproxy` (a real HAProxy on loopback, `haproxy.py`) and storage (libcloud's
LocalStorageDriver, `storage.py`). Everything they know lives in files under `$PROVISIONER_HOME/local-cloud/`,
so separate `provision` processes share one view; they are synchronous and guard that state with file locks.
"""
