"""Detached processes identified beyond their PID.

A PID alone can be reused after a process dies, so every started process is recorded with its
exact command line and its kernel start time (/proc/<pid>/stat); a PID is signalled only while both
still match. Processes run in their own session, so they outlive the `provision` command that
started them and a Ctrl-C in that terminal never reaches them.
"""

from __future__ import annotations

import contextlib
import errno
import os
import signal
import socket
import time
from dataclasses import dataclass
from pathlib import Path

from provisioner.errors import ProvisionerError

__all__ = ["ProcessRecord", "is_alive", "port_in_use", "spawn", "stop"]


@dataclass(frozen=True)
class ProcessRecord:
    pid: int
    argv: tuple[str, ...]
    start_time: int  # clock ticks after boot, field 22 of /proc/<pid>/stat


def _stat_fields(pid: int) -> list[str] | None:
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # The command name (field 2) is parenthesised and may contain spaces: split after it.
    return raw[raw.rindex(")") + 2 :].split()


def _start_time(pid: int) -> int | None:
    fields = _stat_fields(pid)
    return int(fields[19]) if fields else None


def _reap(pid: int) -> None:
    """Collect an exited child of this process, so it does not linger as a zombie."""
    with contextlib.suppress(ChildProcessError):
        os.waitpid(pid, os.WNOHANG)


def is_alive(record: ProcessRecord) -> bool:
    """True while the recorded process runs: same PID, same start time, same command line, not a zombie."""
    _reap(record.pid)
    fields = _stat_fields(record.pid)
    if fields is None or fields[0] in ("Z", "X") or int(fields[19]) != record.start_time:
        return False
    try:
        cmdline = Path(f"/proc/{record.pid}/cmdline").read_bytes()
    except OSError:
        return False
    return tuple(cmdline.decode(errors="replace").split("\0")[:-1]) == record.argv


def spawn(argv: list[str], *, log_file: Path, env: dict[str, str] | None = None) -> ProcessRecord:
    """Start `argv` in a new session with stdin from /dev/null and stdout+stderr appended to `log_file`."""
    log_file.parent.mkdir(parents=True, exist_ok=True)
    try:
        pid = os.posix_spawn(
            argv[0],
            argv,
            dict(os.environ if env is None else env),
            file_actions=[
                (os.POSIX_SPAWN_OPEN, 0, "/dev/null", os.O_RDONLY, 0),
                (os.POSIX_SPAWN_OPEN, 1, str(log_file), os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644),
                (os.POSIX_SPAWN_DUP2, 1, 2),
            ],
            setsid=True,
        )
    except FileNotFoundError as e:
        raise ProvisionerError(f"cannot start {argv[0]}: not found", hint="run `make up` to install it") from e
    start_time = _start_time(pid)
    if start_time is None:  # it already exited and was reaped by someone else
        raise ProvisionerError(f"{argv[0]} exited at once", hint=f"see {log_file}")
    _wait_for_exec(pid)
    return ProcessRecord(pid=pid, argv=tuple(argv), start_time=start_time)


def _wait_for_exec(pid: int, *, timeout: float = 5.0) -> None:
    """posix_spawn returns once the child has switched to the new program's memory, but the kernel sets up
    its argument area a moment later: until then /proc/<pid>/cmdline reads empty and `is_alive` would call
    a healthy, just-started process dead (seen under load)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if Path(f"/proc/{pid}/cmdline").read_bytes():
                return
        except OSError:
            return  # gone: the caller's liveness check reports it
        time.sleep(0.005)


def stop(record: ProcessRecord, *, grace: float = 10.0) -> bool:
    """SIGTERM, wait up to `grace` seconds, then SIGKILL. False when the process was already gone."""
    if not is_alive(record):
        return False
    for sig, wait in ((signal.SIGTERM, grace), (signal.SIGKILL, 5.0)):
        try:
            os.kill(record.pid, sig)
        except ProcessLookupError:
            return True
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline:
            if not is_alive(record):
                return True
            time.sleep(0.05)
    raise ProvisionerError(
        f"process {record.pid} ({record.argv[0]}) survived SIGKILL",
        hint="it may be stuck in the kernel (D state); check `ps -o stat -p PID`",
    )


def port_in_use(address: str, port: int) -> bool:
    """Whether a listener already holds `address:port` (TIME_WAIT leftovers do not count, as for the servers)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((address, port))
        except OSError as e:
            if e.errno == errno.EADDRINUSE:
                return True
            raise
    return False
