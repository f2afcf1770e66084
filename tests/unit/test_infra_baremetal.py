"""The bare-metal driver: inventory parsing with every problem reported, claims that survive processes."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from libcloud.compute.types import NodeState

from provisioner.errors import ProvisionerError
from provisioner.infra.baremetal import BareMetalNodeDriver, load_inventory


def _inventory(tmp_path: Path, hosts: list[dict[str, object]]) -> Path:
    path = tmp_path / "hosts.yml"
    path.write_text(yaml.safe_dump({"hosts": hosts}))
    return path


def _host(name: str, **extra: object) -> dict[str, object]:
    # Port 9 on loopback: nothing listens, so the host reads as unreachable without leaving 127.0.0.0/8.
    return {"name": name, "address": "127.0.0.1", "ssh_port": 9, "key": "~/.ssh/id", **extra}


def test_inventory_reports_every_problem_at_once(tmp_path: Path) -> None:
    path = _inventory(tmp_path, [{"name": "a"}, _host("b", colour="blue"), _host("c"), _host("c")])
    with pytest.raises(ProvisionerError) as raised:
        load_inventory(path)
    message = raised.value.message
    for problem in ("hosts[0].address: required", "hosts[0].key: required", "hosts[1].colour: unknown field",
                    "host c: listed twice"):
        assert problem in message


def test_inventory_defaults_and_expands_the_key(tmp_path: Path) -> None:
    (host,) = load_inventory(_inventory(tmp_path, [_host("a", private_address="10.0.0.5")]))
    assert host.user == "root" and host.api_port == 6443 and host.private_address == "10.0.0.5"
    assert host.key == Path("~/.ssh/id").expanduser()


def test_claims_are_shared_between_driver_instances_and_released_by_destroy(tmp_path: Path) -> None:
    inventory = _inventory(tmp_path, [_host("a", api_port=16443), _host("b")])
    first = BareMetalNodeDriver(ex_inventory=inventory, ex_state_dir=tmp_path)
    node = first.create_node("c1-m0", ex_cluster="c1")
    assert node.extra["host"] == "a" and node.extra["ports"] == {6443: 16443} and node.extra["reusable"]
    assert node.state == NodeState.UNKNOWN  # nothing answers SSH on port 9
    second = BareMetalNodeDriver(ex_inventory=inventory, ex_state_dir=tmp_path)
    assert [n.name for n in second.list_nodes(ex_cluster="c1")] == ["c1-m0"]
    assert second.create_node("c2-m0", ex_cluster="c2").extra["host"] == "b"
    with pytest.raises(ProvisionerError, match="no free host left"):
        second.create_node("c2-n0", ex_cluster="c2")
    first.destroy_node(node)
    assert [n.name for n in second.list_nodes()] == ["c2-m0"]
