"""The container shim: one small process per container attempt that outlives the agent.

Run as a script (stdlib only, so it starts fast): it puts the container's process into the pod's
cgroups, sends stdout and stderr to the attempt's log file, records `process.json` (its own pid and the
container's) and, when the container ends, `exit.json` with the exit code. The agent signals the
container's process group directly; the shim only waits, so a restarted agent can still learn how a
container it did not start ended.

    python shim.py ATTEMPT_DIR [--cgroup-procs FILE ...] [--cwd DIR] -- ARGV...
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

PROCESS_FILE = "process.json"
EXIT_FILE = "exit.json"
LOG_FILE = "container.log"


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


def _write_json(path: Path, data: dict[str, object]) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(data))
    os.replace(tmp, path)


def _parse(argv: list[str]) -> tuple[Path, list[str], str | None, list[str]]:
    """ATTEMPT_DIR [--cgroup-procs FILE]... [--cwd DIR] -- ARGV... (no argparse: it costs start-up time)."""
    attempt, rest = Path(argv[0]), argv[1:]
    procs: list[str] = []
    cwd = None
    while rest and rest[0] != "--":
        option, value, rest = rest[0], rest[1], rest[2:]
        if option == "--cgroup-procs":
            procs.append(value)
        elif option == "--cwd":
            cwd = value
        else:
            raise SystemExit(f"shim: unknown option {option}")
    return attempt, procs, cwd, rest[1:]


def main(argv: list[str]) -> int:
    attempt, cgroup_procs, cwd, command = _parse(argv)
    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(sig, signal.SIG_IGN)

    def join_cgroups() -> None:
        for procs in cgroup_procs:
            with open(procs, "w") as f:
                f.write(str(os.getpid()))
        for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            signal.signal(sig, signal.SIG_DFL)

    with open(attempt / LOG_FILE, "ab", buffering=0) as log:
        try:
            child = subprocess.Popen(
                command, cwd=cwd, stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                start_new_session=True, preexec_fn=join_cgroups,
            )
        except OSError as exc:
            message = f"failed to start container command {command[0]!r}: {exc.strerror or exc}"
            log.write(f"{message}\n".encode())
            code = 126 if isinstance(exc, PermissionError) else 127
            _write_json(attempt / EXIT_FILE, {"exitCode": code, "reason": "StartError", "message": message,
                                              "finishedAt": _now()})
            return code
        _write_json(attempt / PROCESS_FILE, {"shimPid": os.getpid(), "pid": child.pid, "startedAt": _now()})
        status = child.wait()
    code = 128 - status if status < 0 else status  # killed by signal N: 128+N, as container runtimes report
    _write_json(attempt / EXIT_FILE, {"exitCode": code, "signal": -status if status < 0 else 0,
                                      "finishedAt": _now()})
    return code


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
