"""Commands on cluster machines over one fabric/paramiko connection each, outside Ansible.

Used where Ansible would cost seconds per step: preflight, status, logs. Connecting is retried with
tenacity (a machine that just booted may reset the first attempts); when the retries run out the
operator gets one plain message naming the machine and the last error.
"""

from __future__ import annotations

import base64
import socket
from collections.abc import Iterator
from contextlib import contextmanager

import paramiko
from fabric import Connection
from tenacity import RetryError, retry, retry_if_exception_type, stop_after_attempt, wait_exponential

from provisioner.configure.inventory import SshTarget
from provisioner.errors import ProvisionerError

__all__ = ["connect", "run"]

_ATTEMPTS = 5
_SLOW_S = 60  # a busy TCG guest can take tens of seconds to send its SSH banner
_TRANSIENT = (paramiko.SSHException, OSError, socket.timeout, EOFError)


def _pin_host_key(client: paramiko.SSHClient, target: SshTarget) -> None:
    kind, blob = target.host_key.split()[:2]
    key = paramiko.PKey.from_type_string(kind, base64.b64decode(blob))
    client.get_host_keys().add(target.known_hosts_name, kind, key)
    client.set_missing_host_key_policy(paramiko.RejectPolicy())


@retry(retry=retry_if_exception_type(_TRANSIENT), stop=stop_after_attempt(_ATTEMPTS),
       wait=wait_exponential(multiplier=0.5, max=8), reraise=False)
def _open(target: SshTarget) -> Connection:
    conn = Connection(target.host, port=target.port, user=target.user, connect_timeout=10,
                      connect_kwargs={"key_filename": str(target.key_file), "look_for_keys": False,
                                      "allow_agent": False, "banner_timeout": _SLOW_S, "auth_timeout": _SLOW_S})
    if target.host_key:
        _pin_host_key(conn.client, target)
    conn.open()
    return conn


@contextmanager
def connect(name: str, target: SshTarget) -> Iterator[Connection]:
    try:
        conn = _open(target)
    except RetryError as e:
        cause = e.last_attempt.exception()
        raise ProvisionerError(
            f"cannot reach {name} over SSH ({target.user}@{target.host}:{target.port}) after {_ATTEMPTS} "
            f"attempts: {cause}",
            hint="check that the machine runs (`provision status`) and that its SSH key is right",
        ) from cause
    try:
        yield conn
    finally:
        conn.close()


def run(conn: Connection, command: str, *, timeout: float = 60) -> tuple[int, str, str]:
    """(exit code, stdout, stderr) of `command`; never raises on a non-zero exit."""
    result = conn.run(command, hide=True, warn=True, timeout=timeout, in_stream=False)
    return result.exited, result.stdout, result.stderr
