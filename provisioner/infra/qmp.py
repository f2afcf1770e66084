"""A minimal synchronous client for the QEMU Machine Protocol (QMP) on a unix socket.

One connection per operation: a VM's monitor socket is shared by every `provision` process, and QEMU serves
one client at a time, so holding it open would block the others.
"""

from __future__ import annotations

import json
import socket
import time
from pathlib import Path
from types import TracebackType
from typing import Any

from provisioner.errors import ProvisionerError

__all__ = ["Qmp", "QmpError"]


class QmpError(ProvisionerError):
    """QEMU refused a command or its monitor could not be reached."""


class Qmp:
    """`with Qmp(path) as qmp: qmp.execute("set_link", name="lab", up=False)`."""

    def __init__(self, path: Path, *, timeout: float = 10.0) -> None:
        self._path = path
        self._timeout = timeout
        self._sock: socket.socket | None = None
        self._buffer = b""
        self._events: list[dict[str, Any]] = []

    def __enter__(self) -> Qmp:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(self._timeout)
        try:
            sock.connect(str(self._path))
        except OSError as e:
            sock.close()
            raise QmpError(f"cannot reach the QEMU monitor at {self._path}: {e}", hint="is the VM running?") from e
        self._sock = sock
        self._read()  # greeting
        self.execute("qmp_capabilities")
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self._sock is not None:
            self._sock.close()
            self._sock = None

    def execute(self, command: str, **arguments: Any) -> Any:
        """Run one command and return its `return` value; events seen meanwhile are kept for `wait_event`."""
        message: dict[str, Any] = {"execute": command}
        if arguments:
            message["arguments"] = arguments
        self._send(message)
        while True:
            reply = self._read()
            if "event" in reply:
                self._events.append(reply)
            elif "error" in reply:
                raise QmpError(f"QEMU refused {command}: {reply['error'].get('desc', reply['error'])}")
            else:
                return reply.get("return")

    def wait_event(self, name: str, *, timeout: float, match: dict[str, Any] | None = None) -> dict[str, Any]:
        """Wait for an asynchronous event (e.g. DEVICE_DELETED) whose data contains `match`."""
        deadline = time.monotonic() + timeout
        wanted = match or {}
        while True:
            for event in self._events:
                data = event.get("data", {})
                if event["event"] == name and all(data.get(k) == v for k, v in wanted.items()):
                    self._events.remove(event)
                    return event
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise QmpError(f"QEMU did not report {name} {wanted} within {timeout:.0f} s")
            assert self._sock is not None
            self._sock.settimeout(remaining)
            try:
                self._events.append(self._read())
            except TimeoutError:
                continue
            finally:
                self._sock.settimeout(self._timeout)

    def _send(self, message: dict[str, Any]) -> None:
        assert self._sock is not None
        self._sock.sendall(json.dumps(message).encode() + b"\n")

    def _read(self) -> dict[str, Any]:
        assert self._sock is not None
        while b"\n" not in self._buffer:
            chunk = self._sock.recv(65536)
            if not chunk:
                raise QmpError(f"the QEMU monitor at {self._path} closed the connection")
            self._buffer += chunk
        line, self._buffer = self._buffer.split(b"\n", 1)
        reply: dict[str, Any] = json.loads(line)
        return reply
