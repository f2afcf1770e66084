"""`provision` turns bad input into a message, a hint and exit code 1, without a traceback."""

from __future__ import annotations

from pathlib import Path

import pytest

from provisioner.cli import main


def _run(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as exited:
        main(args)
    out, err = capsys.readouterr()
    return int(exited.value.code or 0), out, err


@pytest.fixture(autouse=True)
def _empty_home(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("PROVISIONER_HOME", str(tmp_path))


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["dev", "up", "--masters", "2"], "--masters must be one of 1, 3, 5, not 2"),
        (["dev", "status", "--name", "nope"], "no dev cluster named 'nope'"),
        (["dev", "down", "--name", "nope"], "no dev cluster named 'nope'"),
        (["kubeconfig", "--name", "nope"], "no dev cluster named 'nope'"),
        (["dev", "up", "--name", "Bad_Name"], "invalid cluster name 'Bad_Name'"),
        (["kubeconfig", "--group", "dev"], "--group needs --user"),
    ],
    ids=[
        "even-masters",
        "status-unknown-cluster",
        "down-unknown-cluster",
        "kubeconfig-unknown-cluster",
        "invalid-name",
        "group-without-user",
    ],
)
def test_bad_input_is_a_clear_error(args: list[str], message: str, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = _run(args, capsys)
    assert code == 1
    assert message in err
    assert "hint:" in err
    assert "Traceback" not in err


def test_debug_adds_the_traceback(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = _run(["--debug", "dev", "status", "--name", "nope"], capsys)
    assert code == 1
    assert "Traceback" in err
    assert "no dev cluster named 'nope'" in err


def test_help_lists_the_commands(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = _run(["dev", "--help"], capsys)
    assert code == 0
    for command in ("up", "down", "status"):
        assert command in out
