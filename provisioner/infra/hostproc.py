"""Host processes and ports the local cloud owns: recognising them by PID and command line, stopping them.

A PID only counts as ours while `/proc/<pid>/cmdline` still names a path unique to the object it serves
(a VM's monitor socket, a switch's socket directory, a balancer's config), so a reused PID is never touched.
"""

from __future__ import annotations

import os
import signal
import socket
import time
from pathlib import Path

from provisioner.errors import ProvisionerError

__all__ = ["free_port", "process_matches", "stop_process"]


def process_matches(pid: int, marker: Path) -> bool:
    """True when `pid` is alive and its command line names `marker`."""
    if pid <= 0:
        return False
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return False
    return str(marker).encode() in cmdline


def stop_process(pid: int, marker: Path, *, timeout: float = 10.0) -> None:
    """SIGTERM, then SIGKILL after `timeout`; returns once the process is gone."""
    for sig, wait in ((signal.SIGTERM, timeout), (signal.SIGKILL, 5.0)):
        if not process_matches(pid, marker):
            return
        os.kill(pid, sig)
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline and process_matches(pid, marker):
            time.sleep(0.05)
    if process_matches(pid, marker):
        raise ProvisionerError(f"process {pid} ({marker}) did not exit after SIGKILL")


def free_port(address: str = "127.0.0.1") -> int:
    """A TCP port free on `address` right now (the caller binds it soon after)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((address, 0))
        return int(s.getsockname()[1])
