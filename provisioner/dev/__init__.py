"""`provision dev`: a whole control plane as processes on this host (etcd members, API servers, HAProxy).

Ownership: each cluster's state directory is written only by these functions; processes are
detached and identified by PID + command line + start time, so any later `provision` run (or a
test fixture) can find, check and stop exactly them. Synchronous by design: it runs from the CLI.
"""

from provisioner.dev.cluster import *  # noqa: F403  (the public surface is cluster.py's __all__)
from provisioner.dev.cluster import __all__  # noqa: F401
