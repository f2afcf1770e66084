"""Where machines, load balancers and storage come from: libcloud drivers, ours registered next to libcloud's.

The local cloud is three drivers behind libcloud's interfaces (`drivers.register_drivers()`):
  compute `local`      local.py: QEMU VMs (qemu.py, qmp.py) booted from the image of image.py, with identity
                       from a seed disk (seed.py, guest.py) and a vde_switch lab network per cluster (labnet.py)
  loadbalancer `haproxy`  haproxy.py: a real HAProxy per balancer on loopback (haproxy_config.py)
  storage `local`      storage.py: libcloud's LocalStorageDriver, one backup container per cluster
Everything they know lives in files under `$PROVISIONER_HOME/local-cloud/` (cloudstate.py) and QEMU/HAProxy
run detached, so separate `provision` processes share one view. The drivers are synchronous; concurrent
writers are serialised by a file lock, and processes are only ever stopped by PID after a /proc check
(hostproc.py).
"""
