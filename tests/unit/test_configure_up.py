"""Rendering for `provision up`, pure: bundles and their hashes, the inventory, preflight verdicts, the plan."""

from __future__ import annotations

import base64
import io
import tarfile
from dataclasses import replace
from pathlib import Path

import pytest
import yaml
from libcloud.compute.base import Node
from libcloud.compute.types import NodeState

from provisioner.cluster.machines import Cloud, CloudProfile, Machine, machine_plan, stale_images
from provisioner.cluster.preflight import parse_probe
from provisioner.configure.bundle import render_bundle, write_archive
from provisioner.configure.certs import issue_cluster_certs
from provisioner.configure.inventory import InventoryHost, SshTarget, render_inventory, render_known_hosts
from provisioner.configure.topology import Host, Topology
from provisioner.spec import ClusterSpec


def _topology(master_addresses: tuple[str, ...] = ("10.88.1.10", "10.88.1.11", "10.88.1.12")) -> Topology:
    masters = tuple(Host(name=f"c-m{i}", role="master", address=a) for i, a in enumerate(master_addresses))
    return Topology(cluster="c", masters=masters, nodes=(Host(name="c-n0", role="node", address="10.88.1.20"),),
                    endpoint_host="127.0.0.1")


def _paths(bundle_files: tuple[object, ...]) -> dict[str, bytes]:
    return {f.path: f.data for f in bundle_files}  # type: ignore[attr-defined]


def test_master_bundle_runs_etcd_apiserver_controllers_and_scheduler(tmp_path: Path) -> None:
    topology = _topology()
    bundle = render_bundle(topology, topology.masters[1], issue_cluster_certs(topology, tmp_path))
    assert [(u.group, u.name) for u in bundle.units] == [
        ("etcd", "provisioner-etcd.service"), ("apiserver", "provisioner-apiserver.service"),
        ("control-plane", "provisioner-controllers.service"), ("control-plane", "provisioner-scheduler.service")]
    files = _paths(bundle.files)
    etcd_unit = files["/etc/systemd/system/provisioner-etcd.service"].decode()
    assert "--listen-peer-urls=https://10.88.1.11:2380" in etcd_unit
    assert "c-m0=https://10.88.1.10:2380,c-m1=https://10.88.1.11:2380,c-m2=https://10.88.1.12:2380" in etcd_unit
    config = yaml.safe_load(files["/etc/provisioner/apiserver.yaml"])
    assert config["etcd_endpoints"] == ["10.88.1.10:2379", "10.88.1.11:2379", "10.88.1.12:2379"]
    assert config["advertise_address"] == "10.88.1.11"
    assert config["kubelet_client_cert_file"] in files  # presented to agents' log endpoints
    assert "--identity \\\n    c-m1" in files["/etc/systemd/system/provisioner-scheduler.service"].decode()


def test_node_bundle_balances_api_across_every_master_locally(tmp_path: Path) -> None:
    topology = _topology()
    bundle = render_bundle(topology, topology.nodes[0], issue_cluster_certs(topology, tmp_path))
    files = _paths(bundle.files)
    cfg = files["/etc/provisioner/haproxy.cfg"].decode()
    assert "bind 127.0.0.1:6443" in cfg
    assert all(f"server c-m{i} 10.88.1.1{i}:6443" in cfg for i in range(3))
    kubeconfig = yaml.safe_load(files["/etc/provisioner/agent.kubeconfig"])
    assert kubeconfig["clusters"][0]["cluster"]["server"] == "https://127.0.0.1:6443"
    assert [u.group for u in bundle.units] == ["loadbalancer", "node"]
    assert "--node-name \\\n    c-n0" in files["/etc/systemd/system/provisioner-agent.service"].decode()


def test_bundle_hash_is_stable_across_renders_and_follows_the_topology(tmp_path: Path) -> None:
    topology = _topology()
    first = render_bundle(topology, topology.nodes[0], issue_cluster_certs(topology, tmp_path))
    again = render_bundle(topology, topology.nodes[0], issue_cluster_certs(topology, tmp_path))
    moved = _topology(("10.88.1.10", "10.88.1.11", "10.88.1.99"))
    changed = render_bundle(moved, moved.nodes[0], issue_cluster_certs(moved, tmp_path))
    assert first.hash == again.hash
    assert changed.hash != first.hash


def test_archive_is_not_rewritten_while_its_hash_is_unchanged(tmp_path: Path) -> None:
    topology = _topology()
    bundle = render_bundle(topology, topology.masters[0], issue_cluster_certs(topology, tmp_path / "pki"))
    archive = write_archive(bundle, tmp_path / "m0.tar.gz.b64")
    before = archive.stat().st_mtime_ns
    write_archive(bundle, archive)
    assert archive.stat().st_mtime_ns == before
    with tarfile.open(fileobj=io.BytesIO(base64.b64decode(archive.read_bytes()))) as tar:
        names = tar.getnames()
        manifest = tar.extractfile("manifest").read().decode()  # type: ignore[union-attr]
        assert tar.extractfile("hash").read().decode().strip() == bundle.hash  # type: ignore[union-attr]
    assert {"manifest", "units", "hash", "apply.sh", "files/etc/provisioner/pki/ca.crt"} <= set(names)
    assert "600 /etc/provisioner/pki/etcd-server.key provisioner-etcd.service" in manifest


def _inventory_host(name: str, role: str, port: int) -> InventoryHost:
    ssh = SshTarget(host="127.0.0.1", port=port, user="root", key_file=Path("/k"), host_key="ssh-ed25519 AAAA x")
    return InventoryHost(name=name, role=role, address=f"10.0.0.{port % 100}", ssh=ssh,
                         bundle_file=Path(f"/b/{name}.tar.gz"), bundle_hash=f"h-{name}")


def test_inventory_groups_hosts_and_carries_only_role_variables() -> None:
    inventory = yaml.safe_load(render_inventory((_inventory_host("m0", "master", 2201),
                                                 _inventory_host("n0", "node", 2202))))
    cluster = inventory["all"]["children"]["cluster"]["children"]
    master = cluster["masters"]["hosts"]["m0"]
    assert master["ansible_port"] == 2201 and master["common_bundle_hash"] == "h-m0"
    assert master["etcd_client_url"] == "https://10.0.0.1:2379"
    assert "etcd_client_url" not in cluster["nodes"]["hosts"]["n0"]
    assert inventory["all"]["children"]["etcd"] == {"children": {"masters": {}}}


def test_known_hosts_pin_each_forwarded_port() -> None:
    text = render_known_hosts((_inventory_host("m0", "master", 2201).ssh,
                               SshTarget(host="10.1.1.1", port=22, user="root", key_file=Path("/k"))))
    assert text == "[127.0.0.1]:2201 ssh-ed25519 AAAA\n"


_MACHINE = Machine(name="m0", role="master", address="10.0.0.1",
                   ssh=SshTarget(host="127.0.0.1", port=2201, user="root", key_file=Path("/k")), api_port=0,
                   reusable=False)
_GOOD = "os=debian 12\nclock={clock}\ninstalled=no\nlistening=22 \nfsync_ms={fsync}\n"


@pytest.mark.parametrize(
    ("output", "expected"),
    [
        (_GOOD.format(clock=100.0, fsync=2.0), []),
        (_GOOD.format(clock=100.0, fsync=25.0), [("warning", "disk fsync takes 25.0 ms")]),
        (_GOOD.format(clock=400.0, fsync=2.0), [("error", "clock is +300.0 s off")]),
        (_GOOD.format(clock=105.0, fsync=2.0), [("warning", "clock is +5.0 s off")]),
        (_GOOD.format(clock=100.0, fsync=2.0).replace("debian 12", "ubuntu 22.04"),
         [("error", "unsupported OS 'ubuntu 22.04'")]),
        (_GOOD.format(clock=100.0, fsync=2.0).replace("22 ", "22 2379 6443"),
         [("error", "port(s) 2379, 6443 already in use")]),
        (_GOOD.format(clock=100.0, fsync=2.0).replace("22 ", "22 2379 6443").replace("=no", "=yes"), []),
    ],
    ids=["healthy", "slow-disk", "clock-far-off", "clock-drifting", "wrong-os", "ports-taken",
         "ports-ours-after-install"],
)
def test_preflight_judges_each_probe(output: str, expected: list[tuple[str, str]]) -> None:
    findings = parse_probe(_MACHINE, output, sent=99.9, received=100.1)
    assert [(f.severity, f.message[: len(m)]) for f, (_, m) in zip(findings, expected, strict=False)] == expected
    assert len(findings) == len(expected)


class _FakeCompute:
    """An in-memory compute driver: just what the plan reads."""

    def __init__(self, nodes: dict[str, NodeState]) -> None:
        self.nodes = nodes

    def list_nodes(self, ex_cluster: str | None = None) -> list[Node]:
        return [Node(id=n, name=n, state=s, public_ips=[], private_ips=[], driver=self) for n, s in self.nodes.items()]


def test_plan_creates_missing_machines_starts_stopped_ones_and_reports_strays() -> None:
    spec = ClusterSpec(name="c", masters=3, nodes=1)
    compute = _FakeCompute({"c-m0": NodeState.RUNNING, "c-m1": NodeState.STOPPED, "c-n5": NodeState.RUNNING})
    plan = machine_plan(Cloud(spec=spec, profile=None, compute=compute, balancers=None))  # type: ignore[arg-type]
    assert plan.create == ("c-m2", "c-n0")
    assert plan.start == ("c-m1",)
    assert plan.ready == ("c-m0",)
    assert plan.extra == ("c-n5",)


def test_machines_booted_from_an_older_image_are_reported() -> None:
    profile = CloudProfile(compute="fake", balancer="fake", image=None, current_image=lambda: "new")
    cloud = Cloud(spec=ClusterSpec(name="c"), profile=profile, compute=None, balancers=None)  # type: ignore[arg-type]
    machines = (replace(_MACHINE, name="old", image="old"), replace(_MACHINE, name="fresh", image="new"),
                replace(_MACHINE, name="unknown", image=""))
    assert stale_images(cloud, machines) == ["old"]
