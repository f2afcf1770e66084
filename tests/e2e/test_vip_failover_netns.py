"""Failover of the API's virtual IP between three masters, with the keepalived config the bundles carry.

Three real keepalived processes, each in a network namespace of its own joined by a bridge in a fourth
(namespaces this test creates and deletes: no traffic leaves them), each with `render_keepalived_conf` output
and the interface line written by apply.sh itself. Only the check differs from a master's: a file stands in
for the local API server's /readyz (the VM test `test_up_baremetal.py` proves the real check on one master;
three TCG masters cost too much there). Proves: the first master holds the address, a master whose check
fails gives it up to the next, a stopped keepalived hands it over, and a recovered first master takes it back.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from _cluster import eventually

from provisioner.configure.bundle import APPLY_SCRIPT, KEEPALIVED_PRIORITY
from provisioner.configure.keepalived import VrrpInstance, render_keepalived_conf

pytestmark = pytest.mark.integration

VIP = "10.199.0.250"
ADDRESSES = ("10.199.0.10", "10.199.0.11", "10.199.0.12")


def _ip(*args: str) -> str:
    return subprocess.run(["ip", *args], check=True, capture_output=True, text=True, timeout=30).stdout


@dataclass
class Master:
    namespace: str
    address: str
    ready_file: Path
    process: subprocess.Popen[bytes] | None = None

    def holds_vip(self) -> bool:
        return _ip("-n", self.namespace, "-o", "-4", "addr", "show", "to", f"{VIP}/32").strip() != ""

    def stop(self) -> None:
        """SIGTERM, as `systemctl stop` sends: keepalived removes the address and tells its peers."""
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=30)


@pytest.fixture
def masters(tmp_path: Path) -> Iterator[list[Master]]:
    tag = os.getpid() % 100000
    hub = f"pv-vrrp-hub-{tag}"
    created = [hub]
    group = [Master(f"pv-vrrp-{tag}-{i}", a, tmp_path / f"ready{i}") for i, a in enumerate(ADDRESSES)]
    try:
        _ip("netns", "add", hub)
        _ip("-n", hub, "link", "add", "br0", "type", "bridge")
        _ip("-n", hub, "link", "set", "br0", "up")
        for i, m in enumerate(group):
            _ip("netns", "add", m.namespace)
            created.append(m.namespace)
            _ip("link", "add", f"pvv{tag}x{i}", "netns", m.namespace, "type", "veth",
                "peer", "name", f"pvh{tag}x{i}", "netns", hub)
            _ip("-n", hub, "link", "set", f"pvh{tag}x{i}", "master", "br0", "up")
            _ip("-n", m.namespace, "addr", "add", f"{m.address}/24", "dev", f"pvv{tag}x{i}")
            _ip("-n", m.namespace, "link", "set", f"pvv{tag}x{i}", "up")
            _ip("-n", m.namespace, "link", "set", "lo", "up")
            m.ready_file.touch()
        yield group
    finally:
        for m in group:
            m.stop()
        for namespace in created:
            subprocess.run(["ip", "netns", "del", namespace], capture_output=True, timeout=30)


def _start(index: int, master: Master, group: list[Master], tmp_path: Path) -> None:
    interface_file = tmp_path / f"interface{index}.conf"
    subprocess.run(["ip", "netns", "exec", master.namespace, "sh", str(APPLY_SCRIPT), "vrrp-interface",
                    master.address, str(interface_file)], check=True, timeout=30)
    conf = tmp_path / f"keepalived{index}.conf"
    conf.write_text(render_keepalived_conf(VrrpInstance(
        cluster="failover", address=master.address, vip=VIP, priority=KEEPALIVED_PRIORITY - index,
        peers=tuple(m.address for m in group if m is not master), check=("test", "-e", str(master.ready_file)),
        interface_file=str(interface_file), check_interval_s=1, check_timeout_s=5, check_fall=1, check_rise=1)))
    log = (tmp_path / f"keepalived{index}.log").open("wb")
    master.process = subprocess.Popen(
        ["ip", "netns", "exec", master.namespace, "keepalived", "--vrrp", "--dont-fork", "--log-console",
         f"--use-file={conf}", f"--pid={tmp_path}/k{index}.pid", f"--vrrp_pid={tmp_path}/v{index}.pid"],
        stdout=log, stderr=subprocess.STDOUT)


def _holder(group: list[Master], expected: Master) -> bool:
    holders = [m for m in group if m.holds_vip()]
    if holders != [expected]:
        raise AssertionError(f"held by {[m.namespace for m in holders]}, waiting for {expected.namespace}")
    return True


def test_the_vip_moves_to_the_next_ready_master_and_back(masters: list[Master], tmp_path: Path) -> None:
    first, second, third = masters
    for index, master in enumerate(masters):
        _start(index, master, masters, tmp_path)
    eventually(lambda: _holder(masters, first), timeout=60, what="the first master holding the VIP")

    first.ready_file.unlink()  # its API server stops answering /readyz
    eventually(lambda: _holder(masters, second), timeout=60, what="the VIP on the second master")

    second.stop()  # keepalived stopped on the holder
    eventually(lambda: _holder(masters, third), timeout=60, what="the VIP on the third master")

    first.ready_file.touch()  # the first master's API server is back: the highest priority takes over again
    eventually(lambda: _holder(masters, first), timeout=60, what="the VIP back on the first master")
