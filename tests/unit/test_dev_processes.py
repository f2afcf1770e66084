"""Detached processes are recognised by PID, command line and start time, and stopped only while they match."""

from __future__ import annotations

import dataclasses
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from provisioner.dev.processes import ProcessRecord, is_alive, port_in_use, spawn, stop
from provisioner.errors import ProvisionerError


@pytest.fixture
def sleeper(tmp_path: Path) -> Iterator[ProcessRecord]:
    record = spawn(["/bin/sleep", "300"], log_file=tmp_path / "logs" / "sleep.log")
    try:
        yield record
    finally:
        stop(record, grace=1)


def test_spawned_process_runs_in_its_own_session_and_is_recognised(sleeper: ProcessRecord) -> None:
    assert is_alive(sleeper)
    stat = Path(f"/proc/{sleeper.pid}/stat").read_text()
    session_id = int(stat[stat.rindex(")") + 2 :].split()[3])
    assert session_id == sleeper.pid


@pytest.mark.parametrize(
    "change", [{"argv": ("/bin/sleep", "301")}, {"start_time": 1}], ids=["other-command-line", "other-start-time"]
)
def test_a_pid_with_another_identity_is_not_ours(sleeper: ProcessRecord, change: dict[str, object]) -> None:
    impostor = dataclasses.replace(sleeper, **change)  # type: ignore[arg-type]
    assert not is_alive(impostor)
    assert stop(impostor) is False
    assert is_alive(sleeper)


def test_stop_terminates_and_reports_whether_it_had_to(sleeper: ProcessRecord) -> None:
    assert stop(sleeper, grace=5) is True
    assert not is_alive(sleeper)
    assert stop(sleeper) is False


def test_stop_escalates_to_sigkill_when_sigterm_is_ignored(tmp_path: Path) -> None:
    record = spawn(["/bin/sh", "-c", "trap '' TERM; while :; do sleep 0.1; done"], log_file=tmp_path / "sh.log")
    try:
        assert stop(record, grace=0.5) is True
        assert not is_alive(record)
    finally:
        stop(record, grace=0)


def test_output_goes_to_the_log_file(tmp_path: Path) -> None:
    log = tmp_path / "echo.log"
    record = spawn(["/bin/sh", "-c", "echo out; echo err >&2"], log_file=log)
    while is_alive(record):
        time.sleep(0.01)
    assert log.read_text().split() == ["out", "err"]


def test_a_missing_binary_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ProvisionerError, match="not found"):
        spawn(["/nonexistent/etcd"], log_file=tmp_path / "x.log")


def test_port_in_use_sees_a_listener_only_on_its_address() -> None:
    with socket.socket() as listener:
        listener.bind(("127.77.0.1", 0))
        listener.listen()
        port = listener.getsockname()[1]
        assert port_in_use("127.77.0.1", port)
        assert not port_in_use("127.77.0.2", port)
