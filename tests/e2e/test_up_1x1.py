"""`provision up` on real local VMs, the fast path: 1 master + 1 node.

A VM stopped in the middle of configuration makes `up` fail naming it; the next `up` starts it again,
resumes after the finished phases and brings the node to Ready through the endpoint; a third `up` changes
nothing; `down` leaves no VM, process, balancer or file behind. Tests run in file order on one cluster.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from _cluster import (
    cluster_home,
    eventually,
    local_drivers,
    no_leftover_processes,
    ready_nodes,
)

from provisioner.cluster.ops import down
from provisioner.cluster.state import cluster_files
from provisioner.cluster.up import UpReport, up
from provisioner.errors import ProvisionerError
from provisioner.spec import ClusterSpec
from provisioner.state import read_json

pytestmark = [pytest.mark.vm, pytest.mark.timeout(2400)]

SPEC = ClusterSpec(name="e2e-up1", masters=1, nodes=1)
NODE = "e2e-up1-n0"


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    with cluster_home(tmp_path_factory.mktemp("up1"), SPEC) as path:
        yield path


@pytest.fixture(scope="module")
def reports() -> list[UpReport]:
    return []


def test_vm_stopped_during_configuration_fails_up_with_its_name(home: Path) -> None:
    failure: list[BaseException] = []

    def run() -> None:
        try:
            up(SPEC)
        except BaseException as e:
            failure.append(e)

    thread = threading.Thread(target=run)
    thread.start()
    state_file = cluster_files(SPEC.name).state_file
    # Stopped once etcd is configured: the node is then needed again by the load balancer and nodes phases.
    eventually(lambda: state_file.is_file() and "etcd" in read_json(state_file)["completed"], timeout=1500,
               what="up to finish its etcd phase")
    compute, _ = local_drivers(home)
    compute.stop_node(compute.ex_get_node(NODE))
    thread.join(timeout=1800)
    assert not thread.is_alive()
    assert len(failure) == 1 and isinstance(failure[0], ProvisionerError), failure
    assert NODE in failure[0].message
    assert "unreachable" in failure[0].message or "failed" in failure[0].message


def test_next_up_starts_the_vm_resumes_and_the_node_is_ready(home: Path, reports: list[UpReport]) -> None:
    report = up(SPEC)
    reports.append(report)
    assert f"started {NODE}" in report.changes
    assert "etcd" in {p.name for p in report.phases if p.skipped}
    cache = home / "kubectl-cache"
    assert ready_nodes(report.kubeconfig, cache) == [NODE]


def test_second_up_reports_no_changes(reports: list[UpReport]) -> None:
    report = up(SPEC)
    assert report.changes == ()
    assert not any(p.skipped for p in report.phases)


def test_down_leaves_nothing_behind(home: Path) -> None:
    report = down(SPEC.name)
    assert sorted(report.destroyed) == ["e2e-up1-m0", NODE]
    compute, balancers = local_drivers(home)
    assert compute.list_nodes() == []
    assert balancers.list_balancers() == []
    assert not cluster_files(SPEC.name).root.exists()
    assert not any((home / "local-cloud" / "nodes").glob("*"))
    assert no_leftover_processes(home) == []
