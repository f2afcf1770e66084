"""Loopback address blocks of dev clusters and the state home they are recorded under."""

from __future__ import annotations

from pathlib import Path

import pytest

from provisioner.dev.layout import Layout, block_candidates, choose_block
from provisioner.errors import ProvisionerError
from provisioner.state import cluster_dir, existing_clusters, provisioner_home, read_json, write_json


def test_layout_puts_the_load_balancer_and_each_master_on_its_own_address() -> None:
    layout = Layout(name="dev", block=42, masters=3)
    assert layout.lb_address == "127.42.0.1"
    assert layout.master_addresses == ("127.42.1.1", "127.42.1.2", "127.42.1.3")
    assert layout.server_url == "https://127.42.0.1:6443"


@pytest.mark.parametrize("masters", [0, 2, 4, 7], ids=lambda m: f"masters={m}")
def test_layout_rejects_master_counts_without_a_sensible_quorum(masters: int) -> None:
    with pytest.raises(ValueError, match="masters"):
        Layout(name="dev", block=1, masters=masters)


@pytest.mark.parametrize("block", [0, 255], ids=["block-0-holds-127.0.0.1", "block-255"])
def test_layout_rejects_reserved_blocks(block: int) -> None:
    with pytest.raises(ValueError, match="block"):
        Layout(name="dev", block=block, masters=1)


def test_block_candidates_are_stable_per_name_and_cover_every_block_once() -> None:
    first = list(block_candidates("alpha"))
    assert first == list(block_candidates("alpha"))
    assert sorted(first) == list(range(1, 255))
    assert next(block_candidates("beta")) != first[0]


def test_a_new_cluster_gets_its_own_block_first() -> None:
    assert choose_block("alpha", taken=set(), free=lambda _: True) == next(block_candidates("alpha"))


def test_a_block_recorded_by_another_cluster_is_skipped() -> None:
    first, second = list(block_candidates("alpha"))[:2]
    assert choose_block("alpha", taken={first}, free=lambda _: True) == second


def test_a_block_with_a_busy_port_is_skipped() -> None:
    first, second, third = list(block_candidates("alpha"))[:3]
    assert choose_block("alpha", taken={second}, free=lambda b: b != first) == third


def test_no_block_left_is_none() -> None:
    assert choose_block("alpha", taken=set(range(1, 255)), free=lambda _: True) is None


def test_home_comes_from_provisioner_home(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("PROVISIONER_HOME", str(tmp_path))
    assert provisioner_home() == tmp_path
    assert cluster_dir("dev") == tmp_path / "dev"


def test_home_defaults_to_local_state(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("PROVISIONER_HOME", raising=False)
    assert provisioner_home() == Path.home() / ".local" / "state" / "provisioner"


@pytest.mark.parametrize("name", ["", "Dev", "a b", "-dev", "dev-", "../x", "x" * 41])
def test_cluster_names_must_be_dns_labels(name: str) -> None:
    with pytest.raises(ProvisionerError, match="invalid cluster name"):
        cluster_dir(name, home=Path("/nonexistent"))


def test_state_files_round_trip_and_list_clusters(tmp_path: Path) -> None:
    write_json(tmp_path / "b" / "cluster.json", {"block": 7})
    write_json(tmp_path / "a" / "cluster.json", {"block": 9})
    (tmp_path / "c").mkdir()
    assert read_json(tmp_path / "b" / "cluster.json") == {"block": 7}
    assert existing_clusters(home=tmp_path, state_file="cluster.json") == ["a", "b"]
    assert not list(tmp_path.glob("*/*.tmp"))


def test_a_corrupt_state_file_is_a_clear_error(tmp_path: Path) -> None:
    (tmp_path / "cluster.json").write_text("{not json")
    with pytest.raises(ProvisionerError, match="not valid JSON"):
        read_json(tmp_path / "cluster.json")
