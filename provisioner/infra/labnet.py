"""A cluster's lab network: one `vde_switch` whose sockets live in the cluster's state directory.

The switch is a plain L2 segment between the VMs' lab NICs; no host interface joins it, so lab addresses
(10.88.<cluster index>.0/24) are unreachable from the host's namespace by construction. A VM's link is cut
and restored from QEMU's side (QMP `set_link`), which the guest sees as carrier loss.
"""

from __future__ import annotations

import shutil
import subprocess
import time
from pathlib import Path

from provisioner.errors import ProvisionerError
from provisioner.infra.hostproc import process_matches, stop_process

__all__ = ["ensure_switch", "lab_address", "lab_mac", "stop_switch", "switch_socket"]


def switch_socket(cluster_dir: Path) -> Path:
    return cluster_dir / "switch"


def lab_address(index: int, host: int) -> str:
    return f"10.88.{index}.{host}/24"


def lab_mac(index: int, host: int) -> str:
    return f"52:54:88:00:{index:02x}:{host:02x}"


def ensure_switch(cluster_dir: Path) -> int:
    """Start the cluster's switch unless it already runs; return its PID."""
    pidfile = cluster_dir / "switch.pid"
    sock = switch_socket(cluster_dir)
    if pidfile.is_file() and process_matches(int(pidfile.read_text().strip() or 0), sock):
        return int(pidfile.read_text().strip())
    cluster_dir.mkdir(parents=True, exist_ok=True)
    pidfile.unlink(missing_ok=True)
    argv = ["vde_switch", "-s", str(sock), "-M", str(cluster_dir / "switch.mgmt"), "-p", str(pidfile), "-d"]
    done = subprocess.run(argv, capture_output=True, text=True, stdin=subprocess.DEVNULL, timeout=30, check=False)
    deadline = time.monotonic() + 10
    while not (pidfile.is_file() and (sock / "ctl").exists()) and time.monotonic() < deadline:
        time.sleep(0.02)
    if done.returncode != 0 or not pidfile.is_file():
        raise ProvisionerError(f"vde_switch for {cluster_dir.name} did not start: {done.stderr.strip()}")
    return int(pidfile.read_text().strip())


def stop_switch(cluster_dir: Path) -> None:
    """Stop the switch (by its PID, checked against /proc) and remove its sockets."""
    pidfile = cluster_dir / "switch.pid"
    if pidfile.is_file():
        stop_process(int(pidfile.read_text().strip() or 0), switch_socket(cluster_dir))
        pidfile.unlink(missing_ok=True)
    shutil.rmtree(switch_socket(cluster_dir), ignore_errors=True)
    (cluster_dir / "switch.mgmt").unlink(missing_ok=True)
