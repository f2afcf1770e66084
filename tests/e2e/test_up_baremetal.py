"""The same roles against machines that outlive the cluster: local VMs handed to `provision up --cloud
baremetal` through an inventory file, as an operator would list real hosts.

`up` claims the hosts and brings the node to Ready; a second `up` changes nothing; `down` uninstalls
everything the roles installed and releases the hosts, which keep running, clean.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from _cluster import eventually, provisioner_home, ready_nodes
from libcloud.compute.base import Node

from provisioner.cluster.machines import to_machine
from provisioner.cluster.ops import down
from provisioner.cluster.remote import connect, run
from provisioner.cluster.up import UpReport, up
from provisioner.infra.drivers import register_drivers
from provisioner.infra.image import build_image
from provisioner.infra.local import LocalNodeDriver
from provisioner.spec import ClusterSpec

pytestmark = [pytest.mark.vm, pytest.mark.timeout(3600)]

HOSTS = ("bm-host-a", "bm-host-b")


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    path = tmp_path_factory.mktemp("baremetal")
    with provisioner_home(path):
        yield path


@pytest.fixture(scope="module")
def hosts(home: Path) -> Iterator[list[Node]]:
    """Two VMs in their own state directory: the 'data centre' the inventory describes."""
    register_drivers()
    vms = LocalNodeDriver(ex_state_dir=home / "datacentre")
    image = build_image().hash
    try:
        nodes = [vms.create_node(name, "small", image, ex_cluster="dc", ex_ports=(6443,)) for name in HOSTS]
        yield [n for n, _ in vms.wait_until_running(nodes, wait_period=3, timeout=900)]
    finally:
        for node in vms.list_nodes():
            vms.destroy_node(node)


@pytest.fixture(scope="module")
def spec(home: Path, hosts: list[Node]) -> ClusterSpec:
    inventory = home / "inventory.yml"
    entries = [{"name": n.name, "address": "127.0.0.1", "ssh_port": n.extra["ssh_port"], "user": "root",
                "key": n.extra["ssh_key_file"], "private_address": n.private_ips[0], "api_port": n.extra["ports"][6443],
                "host_key": n.extra["host_key"]} for n in hosts]
    inventory.write_text(yaml.safe_dump({"hosts": entries}))
    return ClusterSpec(name="e2e-bm", cloud="baremetal", masters=1, nodes=1, inventory=inventory)


@pytest.fixture(scope="module")
def cluster(spec: ClusterSpec) -> Iterator[UpReport]:
    try:
        yield up(spec)
    finally:
        try:
            down(spec.name)
        except Exception as e:  # already down, or never up: the hosts fixture still destroys the VMs
            print(f"teardown down: {e}")


def test_up_on_inventory_hosts_gives_a_ready_node(cluster: UpReport, home: Path) -> None:
    assert ready_nodes(cluster.kubeconfig, home / "kubectl-cache") == ["e2e-bm-n0"]


def test_second_up_on_bare_metal_reports_no_changes(cluster: UpReport, spec: ClusterSpec) -> None:
    assert up(spec).changes == ()


def _leftovers(node: Node) -> str:
    machine = to_machine(node, "node")
    with connect(node.name, machine.ssh) as conn:
        _, out, _ = run(conn, "ls -d /etc/provisioner /var/lib/provisioner /etc/systemd/system/provisioner-* "
                              "2>/dev/null; systemctl list-units --all --no-legend 'provisioner-*'; "
                              "pgrep -af '[e]tcd|provisioner[.]controlplane|[h]aproxy' || true")  # [x]: not the shell
    return out.strip()


@pytest.mark.xfail(strict=True, reason="known bug: after `down` the leftover probe still reports something on the "
                   "master host (not yet identified; see the issue 5 note). Strict: a fix turns this into a failure "
                   "to remove the mark.")
def test_down_uninstalls_and_leaves_the_hosts_running_and_clean(cluster: UpReport, spec: ClusterSpec,
                                                                 hosts: list[Node]) -> None:
    report = down(spec.name)
    assert sorted(report.uninstalled) == ["e2e-bm-m0", "e2e-bm-n0"]
    for node in hosts:
        eventually(lambda n=node: _leftovers(n) == "", timeout=120, what=f"{node.name} without provisioner leftovers")
