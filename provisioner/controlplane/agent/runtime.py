"""The process runtime: start, adopt, signal and reap container attempts, each under its own shim.

On-disk layout (the state a restarted agent adopts): `<root>/pods/<pod uid>/<container>/<n>/` holds
attempt n's `container.log`, `process.json` (shim and container pids, written by the shim) and, once it
ended, `exit.json`. A running attempt is verified through `/proc/<shim pid>/cmdline`, which names the
attempt directory, so a recycled pid is never mistaken for ours. restartCount is the attempt number.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import shutil
import signal
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from provisioner.controlplane.agent import shim
from provisioner.controlplane.agent.cgroups import Cgroups

__all__ = ["Attempt", "Runtime", "reap"]

log = logging.getLogger(__name__)

_START_TIMEOUT = 10.0
_POLL = 0.01
_ADOPTED_POLL = 0.5


@dataclass(frozen=True)
class Attempt:
    """One run of one container."""

    directory: Path
    index: int

    @property
    def log_file(self) -> Path:
        return self.directory / shim.LOG_FILE

    def _read(self, name: str) -> dict[str, Any] | None:
        try:
            return dict(json.loads((self.directory / name).read_text()))
        except (FileNotFoundError, ValueError):
            return None

    def process(self) -> dict[str, Any] | None:
        return self._read(shim.PROCESS_FILE)

    def exit(self) -> dict[str, Any] | None:
        return self._read(shim.EXIT_FILE)

    def ran_for(self) -> float:
        """Seconds between the start (process.json written) and the end (or now)."""
        try:
            started = (self.directory / shim.PROCESS_FILE).stat().st_mtime
        except FileNotFoundError:
            return 0.0
        try:
            ended = (self.directory / shim.EXIT_FILE).stat().st_mtime
        except FileNotFoundError:
            ended = time.time()
        return ended - started

    @property
    def container_id(self) -> str:
        pod_uid, container = self.directory.parent.parent.name, self.directory.parent.name
        return f"provisioner://{pod_uid}/{container}/{self.index}"

    def shim_alive(self) -> bool:
        """The attempt's shim still runs (and is really ours: its cmdline names this directory)."""
        process = self.process()
        if process is None:
            return False
        proc = Path(f"/proc/{process['shimPid']}")
        try:
            cmdline = (proc / "cmdline").read_bytes().split(b"\0")
            state = (proc / "stat").read_text().rsplit(")", 1)[1].split()[0]
        except (FileNotFoundError, ProcessLookupError, IndexError):
            return False
        return state != "Z" and str(self.directory).encode() in cmdline


class Runtime:
    """Container attempts of all pods under `root`; knows nothing of the API."""

    def __init__(self, root: Path) -> None:
        self.root = root
        (root / "pods").mkdir(parents=True, exist_ok=True)
        self._children: dict[Path, asyncio.subprocess.Process] = {}

    def pod_dir(self, pod_uid: str) -> Path:
        return self.root / "pods" / pod_uid

    def pod_uids(self) -> list[str]:
        return sorted(p.name for p in (self.root / "pods").iterdir() if p.is_dir())

    def attempts(self, pod_uid: str, container: str) -> list[Attempt]:
        directory = self.pod_dir(pod_uid) / container
        if not directory.is_dir():
            return []
        found = [Attempt(p, int(p.name)) for p in directory.iterdir() if p.name.isdigit()]
        return sorted(found, key=lambda a: a.index)

    async def start(
        self,
        pod_uid: str,
        container: str,
        *,
        argv: Sequence[str],
        env: Mapping[str, str],
        cwd: str | None,
        cgroup_procs: Sequence[Path],
    ) -> Attempt:
        """A new attempt, returned once its process runs (or has already failed to start)."""
        previous = self.attempts(pod_uid, container)
        index = previous[-1].index + 1 if previous else 0
        attempt = Attempt(self.pod_dir(pod_uid) / container / str(index), index)
        attempt.directory.mkdir(parents=True)
        args = [sys.executable, "-S", shim.__file__, str(attempt.directory)]
        for procs in cgroup_procs:
            args += ["--cgroup-procs", str(procs)]
        if cwd:
            args += ["--cwd", cwd]
        process = await asyncio.create_subprocess_exec(
            *args, "--", *argv, env=dict(env), start_new_session=True,
            stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL,
        )
        self._children[attempt.directory] = process
        async with asyncio.timeout(_START_TIMEOUT):
            while attempt.process() is None and attempt.exit() is None:
                if process.returncode is not None and attempt.exit() is None:
                    raise RuntimeError(f"container shim for {container} exited with {process.returncode}")
                await asyncio.sleep(_POLL)
        return attempt

    async def wait(self, attempt: Attempt) -> dict[str, Any]:
        """The attempt's exit record, once it has ended (adopted attempts are polled)."""
        child = self._children.get(attempt.directory)
        if child is not None:
            await child.wait()
            self._children.pop(attempt.directory, None)
        else:
            while attempt.exit() is None and attempt.shim_alive():
                await asyncio.sleep(_ADOPTED_POLL)
        return attempt.exit() or {
            "exitCode": 137, "reason": "ContainerStatusUnknown",
            "message": "the container's shim ended without recording an exit code",
        }

    def signal(self, attempt: Attempt, sig: signal.Signals) -> None:
        """Send `sig` to the container's whole process group.

        Only while the attempt's shim runs: the shim holds the container's pid until it records the exit,
        so the pid cannot have been recycled (pid_max is 32768 here and wraps in minutes under load; a
        killpg on a recycled pid once hit a freshly started etcd, itself a session and group leader)."""
        process = attempt.process()
        if process is None or attempt.exit() is not None or not attempt.shim_alive():
            return
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(int(process["pid"]), sig)

    def remove_pod(self, pod_uid: str) -> None:
        shutil.rmtree(self.pod_dir(pod_uid), ignore_errors=True)

    def running(self) -> list[Attempt]:
        """Every attempt whose shim still runs, across all pods."""
        latest = (self.attempts(uid, c.name)[-1:] for uid in self.pod_uids() for c in self.pod_dir(uid).iterdir())
        return [a[0] for a in latest if a and a[0].shim_alive()]


def reap(root: Path, *, cgroups: Cgroups, timeout: float = 10.0) -> int:
    """Kill every container an agent left running under `root` (the node is going away); how many were."""
    runtime = Runtime(root)
    running = runtime.running()
    for attempt in running:
        runtime.signal(attempt, signal.SIGKILL)
    deadline = time.monotonic() + timeout
    while any(a.shim_alive() for a in running) and time.monotonic() < deadline:
        time.sleep(0.05)
    for uid in runtime.pod_uids():
        cgroups.remove(uid)
    return len(running)
