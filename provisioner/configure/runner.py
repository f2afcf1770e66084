"""Run a playbook of roles/ through ansible-runner with the SSH settings that make TCG guests bearable.

Pipelining and ControlPersist (one SSH connection per host, reused across tasks and across the phases of
one `up`), one fork per host, no fact gathering, host keys checked against the known_hosts file we write.
The persistent connections are closed by `close_connections` when the caller is done with the hosts.
Synchronous: it blocks on ansible-runner, as every caller (the CLI) expects.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import ansible_runner

from provisioner.errors import ProvisionerError

__all__ = ["PLAYBOOKS", "ROLES", "PlaybookResult", "close_connections", "run_playbook"]

PLAYBOOKS = Path(__file__).resolve().parent / "playbooks"
ROLES = Path(__file__).resolve().parents[2] / "roles"
_TAIL_LINES = 15


@dataclass(frozen=True)
class PlaybookResult:
    changed: dict[str, int]  # host -> number of tasks that changed something
    ok: dict[str, int]

    @property
    def total_changed(self) -> int:
        return sum(self.changed.values())


def _control_dir(workdir: Path) -> Path:
    """Unix socket paths are limited to 108 bytes: keep the ControlPath short, unique per work directory."""
    return Path("/tmp") / f"pv-ssh-{hashlib.sha256(str(workdir).encode()).hexdigest()[:10]}"


def _envvars(workdir: Path, *, known_hosts: Path, forks: int) -> dict[str, str]:
    ssh_args = " ".join([
        "-o ControlMaster=auto", "-o ControlPersist=300s", f"-o UserKnownHostsFile={known_hosts}",
        "-o StrictHostKeyChecking=accept-new", "-o ConnectTimeout=10", "-o ServerAliveInterval=5",
        "-o ServerAliveCountMax=3", "-o IdentitiesOnly=yes", "-o BatchMode=yes",
    ])
    return {
        # ansible-playbook is installed next to this Python; a venv's bin/ need not be on PATH.
        "PATH": f"{Path(sys.executable).parent}:{os.environ.get('PATH', '/usr/bin:/bin')}",
        "ANSIBLE_ROLES_PATH": str(ROLES),
        "ANSIBLE_PIPELINING": "True",
        "ANSIBLE_SSH_ARGS": ssh_args,
        "ANSIBLE_SSH_CONTROL_PATH_DIR": str(_control_dir(workdir)),
        "ANSIBLE_HOST_KEY_CHECKING": "True",
        "ANSIBLE_GATHERING": "explicit",
        "ANSIBLE_FORKS": str(forks),
        "ANSIBLE_RETRY_FILES_ENABLED": "False",
        "ANSIBLE_NOCOLOR": "True",
        "ANSIBLE_LOCAL_TEMP": str(workdir / "tmp"),
    }


def _failure(event: dict[str, Any]) -> str:
    data = event.get("event_data", {})
    res = data.get("res", {}) or {}
    detail = "\n".join(str(res.get(k, "")).strip() for k in ("msg", "stderr", "stdout") if res.get(k))
    tail = "\n".join(detail.splitlines()[-_TAIL_LINES:])
    what = "unreachable" if event["event"] == "runner_on_unreachable" else "failed"
    return f"{data.get('host')}: task '{data.get('task')}' {what}\n{tail}".rstrip()


def run_playbook(
    playbook: str, *, workdir: Path, inventory: Path, known_hosts: Path, tags: tuple[str, ...] = (), forks: int = 1
) -> PlaybookResult:
    """Run `playbooks/<playbook>`; a failed or unreachable host raises with its task and the tail of its output."""
    workdir.mkdir(parents=True, exist_ok=True)
    _control_dir(workdir).mkdir(mode=0o700, exist_ok=True)
    result = ansible_runner.run(
        private_data_dir=str(workdir), playbook=str(PLAYBOOKS / playbook), inventory=str(inventory),
        tags=",".join(tags) or None, envvars=_envvars(workdir, known_hosts=known_hosts, forks=max(1, forks)),
        quiet=True, rotate_artifacts=5, forks=max(1, forks),
    )  # fmt: skip
    stats = result.stats or {}
    if result.rc != 0 or result.status != "successful":
        failures = [_failure(e) for e in result.events
                    if e.get("event") in ("runner_on_failed", "runner_on_unreachable")
                    and not e.get("event_data", {}).get("ignore_errors")]
        detail = "\n".join(failures) or "\n".join(result.stdout.read().splitlines()[-_TAIL_LINES:])
        raise ProvisionerError(
            f"ansible ({playbook}, {','.join(tags) or 'all'}) failed:\n{detail}",
            hint=f"fix the cause and run the same command again; it resumes here. Full log: {workdir}/artifacts",
        )
    return PlaybookResult(changed=dict(stats.get("changed", {})), ok=dict(stats.get("ok", {})))


def close_connections(workdir: Path) -> None:
    """End the persistent SSH master connections of this work directory (they would outlive us otherwise)."""
    directory = _control_dir(workdir)
    if not directory.is_dir():
        return
    for socket_file in directory.iterdir():
        subprocess.run(["ssh", "-o", f"ControlPath={socket_file}", "-O", "exit", "unused"], capture_output=True,
                       timeout=10, check=False)
        socket_file.unlink(missing_ok=True)
    directory.rmdir()
