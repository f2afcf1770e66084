"""The cluster spec: defaults, flag overrides, and every error reported at once with its field path."""

from pathlib import Path

import pytest

from provisioner.errors import ProvisionerError
from provisioner.spec import ClusterSpec, SpecError, load_spec, spec_from_dict


def test_defaults_give_a_local_ha_cluster() -> None:
    spec = load_spec()
    assert (spec.cloud, spec.masters, spec.nodes, spec.etcd_members) == ("local", 3, 2, 3)


def test_flags_override_the_file(tmp_path: Path) -> None:
    path = tmp_path / "cluster.yaml"
    path.write_text("name: prod\nmasters: 5\nnodes: 4\nssh: {user: debian}\n")
    spec = load_spec(path, overrides={"masters": 3, "nodes": None})
    assert (spec.name, spec.masters, spec.nodes, spec.ssh.user) == ("prod", 3, 4, "debian")


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        pytest.param({"masters": 2}, "masters: must be one of 1, 3, 5", id="even-masters"),
        pytest.param({"masters": "three"}, "masters: must be an integer", id="masters-not-int"),
        pytest.param({"nodes": -1}, "nodes: must be at least 0", id="negative-nodes"),
        pytest.param({"cloud": "openstack"}, "cloud: must be one of", id="unknown-cloud"),
        pytest.param({"name": "Lab_1"}, "name: must be a DNS label", id="bad-name"),
        pytest.param({"etcd": {"members": 4, "placement": "external"}}, "etcd.members: must be one of 1, 3, 5",
                     id="even-etcd"),
        pytest.param({"etcd": {"members": 5}}, "etcd.members: stacked etcd runs one member per master",
                     id="stacked-etcd-mismatch"),
        pytest.param({"etcd": {"size": 3}}, "etcd.size: unknown field", id="unknown-nested-field"),
        pytest.param({"mastres": 3}, "mastres: unknown field", id="typo-top-level"),
        pytest.param({"cloud": "baremetal"}, "inventory: required when cloud is baremetal", id="baremetal-no-inv"),
        pytest.param({"cloud": "gcp"}, "region: required for cloud gcp", id="cloud-needs-region"),
        pytest.param({"api_port": 70000}, "api_port: must be at most 65535", id="port-range"),
        pytest.param({"api_vip": "10.88.3.300"}, "api_vip: must be an IPv4 address", id="vip-not-ip"),
        pytest.param({"api_vip": "fd00::1"}, "api_vip: must be an IPv4 address", id="vip-ipv6"),
        pytest.param({"api_vip": "127.0.0.9"}, "api_vip: 127.0.0.9 cannot be a virtual IP", id="vip-loopback"),
        pytest.param({"api_vip": "10.88.3.250"}, "api_vip: only on cloud baremetal", id="vip-not-baremetal"),
        pytest.param({"api_vip_port": 6443}, "api_vip_port: 6443 is taken on the masters by the API servers",
                     id="vip-port-apiserver"),
        pytest.param({"api_vip_port": 0}, "api_vip_port: must be at least 1", id="vip-port-zero"),
    ],
)
def test_invalid_field_is_named_with_what_was_expected(raw: dict, expected: str) -> None:
    with pytest.raises(SpecError) as exc:
        spec_from_dict(raw)
    assert any(p.startswith(expected) for p in exc.value.problems), exc.value.problems


def test_all_problems_are_reported_together() -> None:
    with pytest.raises(SpecError) as exc:
        spec_from_dict({"masters": 4, "nodes": -2, "cloud": "nope"})
    assert len(exc.value.problems) == 3
    assert "hint" in str(exc.value)


def test_missing_and_malformed_files_are_clear_errors(tmp_path: Path) -> None:
    with pytest.raises(ProvisionerError, match="does not exist"):
        load_spec(tmp_path / "absent.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("masters: [3\n")
    with pytest.raises(ProvisionerError, match="not valid YAML"):
        load_spec(bad)
    bad.write_text("- 1\n- 2\n")
    with pytest.raises(SpecError, match="must be a mapping"):
        load_spec(bad)


def test_external_etcd_may_differ_from_masters() -> None:
    spec = spec_from_dict({"masters": 1, "etcd": {"placement": "external", "members": 3}})
    assert spec.etcd_members == 3 and isinstance(spec, ClusterSpec)


def _inventory(tmp_path: Path) -> Path:
    path = tmp_path / "inventory.yml"
    path.write_text("hosts:\n- {name: a, address: 192.0.2.10, key: /k, private_address: 10.88.3.10}\n"
                    "- {name: b, address: 10.88.3.11, key: /k}\n")
    return path


def test_a_virtual_ip_on_bare_metal_must_be_free(tmp_path: Path) -> None:
    base = {"cloud": "baremetal", "inventory": str(_inventory(tmp_path))}
    spec = spec_from_dict({**base, "api_vip": "10.88.3.250", "api_vip_port": 9443})
    assert (spec.api_vip, spec.api_vip_port) == ("10.88.3.250", 9443)
    for taken, host in (("10.88.3.10", "a"), ("10.88.3.11", "b")):
        with pytest.raises(SpecError) as exc:
            spec_from_dict({**base, "api_vip": taken})
        assert exc.value.problems == [f"api_vip: {taken} is already the address of host {host} in "
                                      f"{base['inventory']}; pick a free address on the masters' network"]
