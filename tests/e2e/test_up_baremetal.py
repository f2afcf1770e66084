"""The same roles against machines that outlive the cluster: local VMs handed to `provision up --cloud
baremetal` through an inventory file, as an operator would list real hosts.

`up` claims the hosts and brings the node to Ready; the API answers on a keepalived virtual IP inside the lab
network (which the operator's machine deliberately cannot reach: its kubeconfig keeps the loopback balancer over
the forwarded ports) and the IP leaves a master whose API server stops; a second `up` changes nothing; `down`
uninstalls everything the roles installed, the virtual IP included, and releases the hosts, which keep running,
clean. One master only (each TCG VM costs minutes): failover between masters is not exercised here.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from _cluster import eventually, provisioner_home, ready_nodes
from fabric import Connection
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
VIP_PORT = 8443
APPLY = "/var/lib/provisioner/bundle/apply.sh"
LB_PEM = "/etc/provisioner/pki/lb-health.pem"


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
    vip = hosts[0].private_ips[0].rsplit(".", 1)[0] + ".250"  # a free address on the lab network
    return ClusterSpec(name="e2e-bm", cloud="baremetal", masters=1, nodes=1, inventory=inventory, api_vip=vip,
                       api_vip_port=VIP_PORT)


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


def _on(node: Node, command: str) -> tuple[int, str]:
    """(exit code, stdout and stderr) of `command` on an inventory host, over SSH."""
    with connect(node.name, to_machine(node, "node").ssh) as conn:
        code, out, err = run(conn, command)
    return code, (out + err).strip()


def _holds(conn: Connection, vip: str) -> bool:
    return run(conn, f"ip -o -4 addr show to {vip}/32")[1].strip() != ""


def _vip_answers(node: Node, vip: str) -> bool:
    """GET https://VIP:PORT/readyz from inside the lab network, TLS verified against the cluster CA."""
    code, out = _on(node, f"sh {APPLY} ready https://{vip}:{VIP_PORT}/readyz {LB_PEM} {LB_PEM}")
    if code != 0:
        raise AssertionError(f"readyz through the virtual IP: exit {code}: {out[-300:]}")
    return True


def test_virtual_ip_answers_inside_the_lab_and_leaves_a_master_whose_api_server_stops(
        cluster: UpReport, spec: ClusterSpec, hosts: list[Node]) -> None:
    master, node = hosts  # the first free host is claimed first, by the master
    assert _vip_answers(node, spec.api_vip)
    with connect(master.name, to_machine(master, "master").ssh) as conn:
        assert _holds(conn, spec.api_vip)
        assert run(conn, "systemctl stop provisioner-apiserver.service")[0] == 0
        try:
            eventually(lambda: not _holds(conn, spec.api_vip), timeout=120, what="the VIP given up by the master")
        finally:
            assert run(conn, "systemctl start provisioner-apiserver.service")[0] == 0
        eventually(lambda: _holds(conn, spec.api_vip), timeout=600, what="the VIP back on the ready master")
    eventually(lambda: _vip_answers(node, spec.api_vip), timeout=120, what="readyz through the VIP again")


def _clean(node: Node, vip: str) -> bool:
    """True when nothing of the provisioner is left; raises with what is left (shown when `eventually` gives up)."""
    _, out = _on(node, "ls -d /etc/provisioner /var/lib/provisioner /run/provisioner-* "
                       "/etc/systemd/system/provisioner-* 2>/dev/null; "
                       "systemctl list-units --all --no-legend 'provisioner-*'; "
                       f"ip -o -4 addr show to {vip}/32; "
                       # [x]: the pattern must not match the shell running it
                       "pgrep -af '[e]tcd|provisioner[.]controlplane|[h]aproxy|[k]eepalived' || true")
    if out:
        raise AssertionError(f"left on {node.name}: {out}")
    return True


def test_down_uninstalls_and_leaves_the_hosts_running_and_clean(cluster: UpReport, spec: ClusterSpec,
                                                                 hosts: list[Node]) -> None:
    report = down(spec.name)
    assert sorted(report.uninstalled) == ["e2e-bm-m0", "e2e-bm-n0"]
    for node in hosts:
        eventually(lambda n=node: _clean(n, spec.api_vip), timeout=120, what=f"{node.name} without leftovers")
