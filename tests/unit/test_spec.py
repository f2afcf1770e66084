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
