"""`provision up` and friends turn bad input into a message and a hint, before touching any machine."""

from __future__ import annotations

from pathlib import Path

import pytest

from provisioner.cli import main


@pytest.fixture(autouse=True)
def _empty_home(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("PROVISIONER_HOME", str(tmp_path))


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["up", "--masters", "2"], "masters: must be one of 1, 3, 5"),
        (["up", "--cloud", "baremetal"], "inventory: required when cloud is baremetal"),
        (["up", "--cloud", "gcp", "--masters", "1"], "region: required for cloud gcp"),
        (["plan", "--nodes", "-1"], "nodes: must be at least 0"),
        (["status", "--name", "nope"], "no cluster named 'nope'"),
        (["down", "--name", "nope", "--yes"], "no cluster named 'nope'"),
        (["logs", "m0", "--name", "nope"], "no cluster named 'nope'"),
        (["ssh", "m0", "--name", "nope"], "no cluster named 'nope'"),
        (["rebuild", "--name", "nope", "--yes"], "no cluster named 'nope'"),
    ],
    ids=["even-masters", "baremetal-without-inventory", "cloud-without-region", "negative-nodes",
         "status-unknown", "down-unknown", "logs-unknown", "ssh-unknown", "rebuild-unknown"],
)
def test_bad_input_is_a_message_and_exit_code_1(args: list[str], message: str,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        main(args)
    _, err = capsys.readouterr()
    assert exited.value.code == 1
    assert message in " ".join(err.split())
    assert "Traceback" not in err


def test_up_on_a_cloud_without_drivers_says_which_clouds_work(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["up", "--cloud", "vagrant", "--masters", "1"])
    assert "cloud 'vagrant' cannot run `provision up` yet" in " ".join(capsys.readouterr().err.split())
