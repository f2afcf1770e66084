"""`provision dev` end to end: real etcd members, API servers and HAProxy on loopback, driven by kubectl."""

from __future__ import annotations

import socket
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import DevCluster, Kubectl

from provisioner.dev import ProcessStatus, dev_down, dev_status, dev_up, load_layout
from provisioner.dev.probes import EtcdMemberStatus, https_ready
from provisioner.dev.processes import ProcessRecord, is_alive
from provisioner.errors import ProvisionerError
from provisioner.pki import IssuedCert

pytestmark = pytest.mark.integration


def _readyz(cluster: DevCluster, url: str) -> str | None:
    return https_ready(
        f"{url}/readyz",
        ca_file=cluster.ca_file,
        client=IssuedCert(cert_file=cluster.admin_cert, key_file=cluster.admin_key),
    )


def test_every_process_is_alive_and_etcd_has_one_leader(dev_cluster: DevCluster) -> None:
    status = dev_status(name=dev_cluster.name, home=dev_cluster.home)
    names = {p.name for p in status.processes}
    assert names == {"etcd-0", "etcd-1", "etcd-2", "apiserver-0", "apiserver-1", "apiserver-2", "haproxy"}
    assert all(p.alive for p in status.processes), status.processes
    members = [m.status for m in status.etcd]
    assert all(isinstance(m, EtcdMemberStatus) for m in members), members
    assert sum(m.is_leader for m in members if isinstance(m, EtcdMemberStatus)) == 1
    assert status.leader in {"etcd-0", "etcd-1", "etcd-2"}


def test_api_is_ready_through_haproxy_and_on_each_server(dev_cluster: DevCluster) -> None:
    for url in (dev_cluster.server, *dev_cluster.apiservers):
        assert _readyz(dev_cluster, url) is None


def test_up_again_on_a_running_cluster_changes_nothing(dev_cluster: DevCluster) -> None:
    before = {p.name: p.pid for p in dev_status(name=dev_cluster.name, home=dev_cluster.home).processes}
    report = dev_cluster.restart()
    assert not report.changed
    assert {a.what for a in report.actions} == {"unchanged"}
    assert {p.name: p.pid for p in dev_status(name=dev_cluster.name, home=dev_cluster.home).processes} == before


@pytest.mark.parametrize("process", ["apiserver-1", "etcd-2"])
def test_up_restarts_exactly_the_process_that_died(dev_cluster: DevCluster, process: str) -> None:
    old_pid = dev_cluster.kill(process)
    report = dev_cluster.restart()
    assert [(a.process, a.what) for a in report.actions if a.what != "unchanged"] == [(process, "restarted")]
    restarted = dev_cluster.process(process)
    assert restarted.alive and restarted.pid != old_pid
    assert _readyz(dev_cluster, dev_cluster.server) is None


def test_admin_kubeconfig_reaches_the_cluster_through_kubectl(dev_cluster: DevCluster, kubectl: Kubectl) -> None:
    result = kubectl("get", "namespaces", "-o", "name", check=True)
    assert "namespace/default" in result.stdout.split()
    config = kubectl("config", "view", "--minify", "-o", "jsonpath={.clusters[0].cluster.server}", check=True)
    assert config.stdout == dev_cluster.server


def test_cli_status_and_kubeconfig(dev_cluster: DevCluster) -> None:
    env = {"PROVISIONER_HOME": str(dev_cluster.home), "PATH": "/usr/bin:/bin", "COLUMNS": "200"}
    provision = str(Path(sys.executable).with_name("provision"))
    status = subprocess.run(
        [provision, "dev", "status", "--name", dev_cluster.name], env=env, capture_output=True, text=True, timeout=60
    )
    assert status.returncode == 0, status.stderr
    assert status.stdout.count("alive") == 7
    assert "leader: etcd-" in status.stdout
    path = subprocess.run(
        [provision, "kubeconfig", "--name", dev_cluster.name], env=env, capture_output=True, text=True, timeout=60
    )
    assert path.returncode == 0, path.stderr
    assert Path(path.stdout.strip()) == dev_cluster.kubeconfig


def test_cli_issues_a_user_kubeconfig_that_authenticates_as_that_user(
    dev_cluster: DevCluster, kubectl: Kubectl
) -> None:
    env = {"PROVISIONER_HOME": str(dev_cluster.home), "PATH": "/usr/bin:/bin"}
    provision = str(Path(sys.executable).with_name("provision"))
    issued = subprocess.run(
        [provision, "kubeconfig", "--name", dev_cluster.name, "--user", "dev-alice", "--group", "dev-team"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert issued.returncode == 0, issued.stderr
    denied = kubectl("get", "secrets", "-n", "default", kubeconfig=Path(issued.stdout.strip()))
    assert denied.returncode != 0
    assert 'User "dev-alice" cannot list resource "secrets"' in denied.stderr


@pytest.fixture
def one_master(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """A separate 1-master cluster for the lifecycle test; purged at the end whatever happens."""
    name, home = f"life-{uuid.uuid4().hex[:6]}", tmp_path / "home"
    try:
        yield name, home
    finally:
        if (home / name / "cluster.json").exists():
            dev_down(name=name, purge=True, home=home)


def _records(processes: tuple[ProcessStatus, ...]) -> list[ProcessRecord]:
    """Identity of each running process, read from /proc now, to check later that it is gone."""
    records = []
    for p in processes:
        assert p.pid is not None
        stat = Path(f"/proc/{p.pid}/stat").read_text()
        argv = tuple(Path(f"/proc/{p.pid}/cmdline").read_bytes().decode().split("\0")[:-1])
        records.append(ProcessRecord(pid=p.pid, argv=argv, start_time=int(stat[stat.rindex(")") + 2 :].split()[19])))
    return records


def test_down_keeps_data_blocks_on_busy_ports_and_purge_leaves_nothing(
    one_master: tuple[str, Path], tmp_path: Path
) -> None:
    name, home = one_master
    report = dev_up(name=name, masters=1, home=home)
    kubectl = Kubectl(kubeconfig=report.kubeconfig, cache_dir=tmp_path / "kubectl-cache")
    kubectl(
        "create",
        "-f",
        "-",
        stdin="apiVersion: v1\nkind: ConfigMap\nmetadata: {name: survivor}\ndata: {k: v}\n",
        check=True,
    )
    running = _records(dev_status(name=name, home=home).processes)
    assert len(running) == 3

    down = dev_down(name=name, home=home)
    assert set(down.stopped) == {"etcd-0", "apiserver-0", "haproxy"}
    assert not any(is_alive(r) for r in running)
    assert (home / name / "data" / "etcd-0").is_dir()

    layout = load_layout(name, home=home)
    with socket.socket() as squatter:
        squatter.bind((layout.lb_address, 6443))
        squatter.listen()
        with pytest.raises(ProvisionerError, match=rf"haproxy: port {layout.lb_address}:6443 is already in use"):
            dev_up(name=name, home=home)
    assert not any(p.alive for p in dev_status(name=name, home=home).processes)

    again = dev_up(name=name, home=home)
    assert {a.what for a in again.actions} == {"started"}  # after a down; "restarted" means it had died
    assert kubectl("get", "configmap", "survivor", "-o", "jsonpath={.data.k}", check=True).stdout == "v"

    running = _records(dev_status(name=name, home=home).processes)
    purged = dev_down(name=name, purge=True, home=home)
    assert purged.purged
    assert not (home / name).exists()
    assert not any(is_alive(r) for r in running)
