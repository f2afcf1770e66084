"""The local cloud end to end: three real QEMU VMs, the HAProxy balancer, a lab partition and a volume,
all through libcloud's driver interfaces, and nothing left behind afterwards.

The tests share one set of VMs (booting is the expensive part) and run in file order.
"""

from __future__ import annotations

import base64
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path

import paramiko
import pytest
from libcloud.compute.base import Node
from libcloud.compute.providers import get_driver as get_compute
from libcloud.compute.types import NodeState
from libcloud.loadbalancer.base import Algorithm, Member
from libcloud.loadbalancer.providers import get_driver as get_balancer

from provisioner.infra.drivers import register_drivers
from provisioner.infra.haproxy import HaproxyLBDriver
from provisioner.infra.image import Image, build_image
from provisioner.infra.local import LocalNodeDriver

pytestmark = [pytest.mark.vm, pytest.mark.timeout(1800)]

HTTP_PORT = 8000
NAMES = ("lvm-a", "lvm-b", "lvm-c")


@pytest.fixture(scope="module")
def image() -> Image:
    """Built once and cached outside the repository (see `image.image_cache_dir`); reused across runs."""
    return build_image(progress=lambda m: print(m, file=sys.stderr))


@pytest.fixture(scope="module")
def state_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("local-cloud")


@pytest.fixture(scope="module")
def compute(state_dir: Path) -> LocalNodeDriver:
    register_drivers()
    driver: LocalNodeDriver = get_compute("local")(ex_state_dir=state_dir)
    return driver


@pytest.fixture(scope="module")
def balancers(state_dir: Path) -> HaproxyLBDriver:
    register_drivers()
    return get_balancer("haproxy")(ex_state_dir=state_dir)


@pytest.fixture(scope="module")
def vms(
    image: Image, compute: LocalNodeDriver, balancers: HaproxyLBDriver, state_dir: Path
) -> Iterator[dict[str, Node]]:
    """Three VMs in one cluster, each forwarding its port 8000; everything is torn down even on failure."""
    try:
        nodes = [compute.create_node(n, "small", image.hash, ex_cluster="e2e", ex_ports=(HTTP_PORT,)) for n in NAMES]
        running = compute.wait_until_running(nodes, timeout=900)
        yield {node.name: node for node, _ in running}
    finally:
        _destroy_everything(compute, balancers)


def _destroy_everything(compute: LocalNodeDriver, balancers: HaproxyLBDriver) -> None:
    for balancer in balancers.list_balancers():
        balancers.destroy_balancer(balancer)
    for volume in compute.list_volumes():
        if volume.extra["node"]:
            compute.detach_volume(volume)
        compute.destroy_volume(volume)
    for node in compute.list_nodes():
        compute.destroy_node(node)


def ssh(node: Node) -> paramiko.SSHClient:
    """Connect as the operator, pinning the host key the driver generated for this VM."""
    extra = node.extra
    client = paramiko.SSHClient()
    client.set_missing_host_key_policy(paramiko.RejectPolicy())
    kind, blob = extra["host_key"].split()[:2]
    client.get_host_keys().add(
        f"[127.0.0.1]:{extra['ssh_port']}", kind, paramiko.Ed25519Key(data=base64.b64decode(blob))
    )
    client.connect(
        "127.0.0.1", port=extra["ssh_port"], username="root", key_filename=extra["ssh_key_file"],
        look_for_keys=False, allow_agent=False, timeout=30,
    )  # fmt: skip
    return client


def run(node: Node, command: str, *, check: bool = True) -> tuple[int, str]:
    with ssh(node) as client:
        _, stdout, stderr = client.exec_command(command, timeout=120)
        out = stdout.read().decode()
        code = stdout.channel.recv_exit_status()
        if check and code != 0:
            raise AssertionError(f"{command!r} on {node.name} exited {code}: {out}{stderr.read().decode()}")
        return code, out


def eventually(probe: Callable[[], bool], *, timeout: float = 120, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not probe():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.5)


def lab_ip(node: Node) -> str:
    return str(node.private_ips[0])


def test_each_vm_answers_ssh_with_its_own_identity(vms: dict[str, Node]) -> None:
    ids = {}
    for name, node in vms.items():
        _, out = run(node, "hostname; cat /etc/machine-id; ip -4 -o addr show")
        hostname, machine_id, addrs = out.split("\n", 2)
        assert hostname == name
        assert f"inet {lab_ip(node)}/24" in addrs
        ids[name] = machine_id
    assert len(set(ids.values())) == 3


def test_vms_reach_each_other_over_the_lab_network(vms: dict[str, Node]) -> None:
    a, b, c = (vms[n] for n in NAMES)
    run(a, f"ping -c 1 -W 5 {lab_ip(b)} && ping -c 1 -W 5 {lab_ip(c)}")
    run(c, f"ping -c 1 -W 5 {lab_ip(a)}")


def test_another_process_sees_the_same_nodes(vms: dict[str, Node], state_dir: Path) -> None:
    code = (
        "from provisioner.infra.local import LocalNodeDriver;"
        f"print(sorted((n.name, n.state) for n in LocalNodeDriver(ex_state_dir={str(state_dir)!r}).list_nodes()))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == str(sorted((n, NodeState.RUNNING) for n in NAMES))


def _start_http(node: Node) -> None:
    run(
        node,
        f"mkdir -p /srv/www && hostname > /srv/www/index.html && cd /srv/www && "
        f"(setsid nohup python3 -m http.server {HTTP_PORT} >/dev/null 2>&1 </dev/null & echo $! > /run/http.pid)",
    )


def _answers_http(port: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=10) as response:
            return bool(response.status == 200)
    except OSError:
        return False


def test_haproxy_balances_across_the_vms_and_skips_a_failed_member(
    vms: dict[str, Node], balancers: HaproxyLBDriver
) -> None:
    for node in vms.values():
        _start_http(node)
    for node in vms.values():
        eventually(lambda port=node.extra["ports"][HTTP_PORT]: _answers_http(port), what=f"http.server in {node.name}")
    members = [Member(None, "127.0.0.1", node.extra["ports"][HTTP_PORT]) for node in vms.values()]
    lb = balancers.create_balancer("web", 0, "http", Algorithm.ROUND_ROBIN, members)

    def statuses() -> dict[str, str]:
        return {m.id: m.extra["status"] for m in balancers.balancer_list_members(lb)}

    def fetch() -> str:
        with urllib.request.urlopen(f"http://127.0.0.1:{lb.port}/", timeout=30) as response:
            return str(response.read().decode().strip())

    eventually(lambda: set(statuses().values()) == {"UP"}, what="all members UP")
    assert {fetch() for _ in range(9)} == set(NAMES)

    run(vms["lvm-c"], "kill $(cat /run/http.pid)")
    down = f"127.0.0.1:{vms['lvm-c'].extra['ports'][HTTP_PORT]}"
    eventually(lambda: statuses()[down] == "DOWN", what="the stopped member marked DOWN")
    assert {fetch() for _ in range(6)} == {"lvm-a", "lvm-b"}

    balancers.balancer_detach_member(lb, members[1])
    assert {fetch() for _ in range(4)} == {"lvm-a"}
    assert [m.port for m in balancers.balancer_list_members(lb)] == [members[0].port, members[2].port]


def test_cut_lab_link_partitions_one_vm_until_restored(vms: dict[str, Node], compute: LocalNodeDriver) -> None:
    a, c = vms["lvm-a"], vms["lvm-c"]
    compute.ex_set_lab_link(c, up=False)
    assert compute.ex_get_node("lvm-c").extra["lab_link_up"] is False
    code, _ = run(a, f"ping -c 2 -W 2 {lab_ip(c)}", check=False)
    assert code != 0
    run(c, "true")  # still managed through its management NIC
    compute.ex_set_lab_link(c, up=True)
    eventually(lambda: run(a, f"ping -c 1 -W 2 {lab_ip(c)}", check=False)[0] == 0, what="lab link back")


def test_volume_hotplugs_into_a_running_vm_and_unplugs(vms: dict[str, Node], compute: LocalNodeDriver) -> None:
    b = vms["lvm-b"]
    volume = compute.create_volume(1, "data1")
    device = volume.extra["guest_device"]
    compute.attach_volume(b, volume)
    eventually(lambda: run(b, f"test -b {device}", check=False)[0] == 0, what="volume visible in the guest")
    run(b, f"echo payload | dd of={device} bs=512 count=1 conv=sync && head -c 7 {device} | grep -q payload")
    assert compute.list_volumes()[0].extra["node"] == "lvm-b"
    compute.detach_volume(volume)
    eventually(lambda: run(b, f"test -e {device}", check=False)[0] != 0, what="volume gone from the guest")
    compute.destroy_volume(compute.list_volumes()[0])
    assert compute.list_volumes() == []


def test_stop_and_start_keep_the_vm_identity(vms: dict[str, Node], compute: LocalNodeDriver) -> None:
    c = vms["lvm-c"]
    _, before = run(c, "cat /etc/machine-id /etc/ssh/ssh_host_ed25519_key.pub")
    compute.stop_node(c)
    assert compute.ex_get_node("lvm-c").state == NodeState.STOPPED
    compute.start_node(c)
    ((node, _),) = compute.wait_until_running([c], timeout=600)
    _, after = run(node, "cat /etc/machine-id /etc/ssh/ssh_host_ed25519_key.pub")
    assert after == before
    run(vms["lvm-a"], f"ping -c 1 -W 5 {lab_ip(node)}")


def test_destroy_leaves_no_process_file_or_socket(
    vms: dict[str, Node], compute: LocalNodeDriver, balancers: HaproxyLBDriver, state_dir: Path
) -> None:
    pids = [n.extra["pid"] for n in compute.list_nodes()]
    switch_pid = int((state_dir / "clusters" / "e2e" / "switch.pid").read_text())
    haproxy_pids = [int(p) for p in (state_dir / "balancers").glob("*/haproxy.pid") for p in p.read_text().split()]
    _destroy_everything(compute, balancers)
    assert compute.list_nodes() == [] and balancers.list_balancers() == []
    for pid in [*pids, switch_pid, *haproxy_pids]:
        assert (
            not Path(f"/proc/{pid}/cmdline").exists()
            or str(state_dir).encode() not in Path(f"/proc/{pid}/cmdline").read_bytes()
        ), f"process {pid} survived"
    left = sorted(str(p.relative_to(state_dir)) for p in state_dir.rglob("*") if p.is_file() or p.is_socket())
    assert set(left) <= {".lock", "accel.json", "id_ed25519", "id_ed25519.pub"}, left
