"""The scheduling queue and the scheduler's informer handlers: what gets queued, parked, retried and counted."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
from _scheduler_objects import make_node, make_pod

from provisioner.controlplane.client import ApiClient
from provisioner.controlplane.scheduler.framework import ClusterEvent
from provisioner.controlplane.scheduler.queue import SchedulingQueue
from provisioner.controlplane.scheduler.scheduler import Scheduler
from provisioner.pki import CertificateAuthority


def test_parked_pod_waits_for_a_cluster_event_then_returns() -> None:
    async def scenario() -> None:
        queue = SchedulingQueue(initial_backoff=0.0, max_backoff=0.0)
        queue.add("default/a")
        key = await queue.pop()
        queue.park(key)  # type: ignore[arg-type]
        queue.done(key)  # type: ignore[arg-type]
        assert len(queue) == 0 and queue.unschedulable == {"default/a"}
        queue.move(ClusterEvent.NODE_ADDED)
        assert queue.unschedulable == frozenset()
        assert await asyncio.wait_for(queue.pop(), 1) == "default/a"

    asyncio.run(scenario())


def test_parked_pod_ignores_events_its_rejecting_plugins_did_not_ask_for() -> None:
    async def scenario() -> None:
        queue = SchedulingQueue()
        queue.park("default/a", frozenset({ClusterEvent.POD_DELETED}))
        queue.move(ClusterEvent.NODE_ADDED)
        assert queue.unschedulable == {"default/a"}
        queue.move(ClusterEvent.POD_DELETED)
        assert queue.unschedulable == frozenset()
        queue.shutdown()

    asyncio.run(scenario())


def test_removed_pod_leaves_the_unschedulable_set() -> None:
    queue = SchedulingQueue()
    queue.park("default/a")
    queue.remove("default/a")
    assert queue.unschedulable == frozenset()


@pytest.fixture
def scheduler(tmp_path: Path) -> Scheduler:
    ca = CertificateAuthority.load_or_create(tmp_path)
    cert = ca.issue("scheduler", common_name="system:kube-scheduler", client=True)
    client = ApiClient(server="https://127.0.0.1:1", ca_file=ca.cert_file, cert_file=cert.cert_file,
                       key_file=cert.key_file)
    return Scheduler(client)


def queued(scheduler: Scheduler) -> int:
    return len(scheduler.queue)


def test_pending_pod_of_this_scheduler_is_queued_and_others_are_not(scheduler: Scheduler) -> None:
    scheduler._pod_added(make_pod("mine"))
    scheduler._pod_added(make_pod("theirs", schedulerName="other-scheduler"))
    assert queued(scheduler) == 1


def test_status_only_update_of_a_pending_pod_does_not_requeue_it(scheduler: Scheduler) -> None:
    pod = make_pod("a")
    scheduler.queue.park("default/a")
    with_condition: dict[str, Any] = {**pod, "status": {"conditions": [{"type": "PodScheduled", "status": "False"}]}}
    scheduler._pod_updated(pod, with_condition)
    assert scheduler.queue.unschedulable == {"default/a"}
    relabelled = {**pod, "metadata": {**pod["metadata"], "labels": {"new": "label"}}}
    scheduler._pod_updated(pod, relabelled)
    assert scheduler.queue.unschedulable == frozenset() and queued(scheduler) == 1


def test_bound_pods_count_on_their_node_until_they_finish(scheduler: Scheduler) -> None:
    scheduler._node_added(make_node("n1", cpu="2"))
    running = make_pod("a", node="n1", cpu="1500m")
    scheduler._pod_added(running)
    assert scheduler.cache.node("n1").requested.milli_cpu == 1500  # type: ignore[union-attr]
    finished = {**running, "status": {"phase": "Succeeded"}}
    scheduler._pod_updated(running, finished)
    assert scheduler.cache.node("n1").requested.milli_cpu == 0  # type: ignore[union-attr]


def test_deleting_a_bound_pod_retries_parked_pods(scheduler: Scheduler) -> None:
    async def scenario() -> None:
        scheduler._node_added(make_node("n1"))
        bound = make_pod("a", node="n1")
        scheduler._pod_added(bound)
        scheduler.queue.park("default/waiting")
        scheduler._pod_deleted(bound)
        assert scheduler.queue.unschedulable == frozenset()
        scheduler.queue.shutdown()

    asyncio.run(scenario())


def test_node_heartbeat_does_not_retry_parked_pods_but_a_new_node_does(scheduler: Scheduler) -> None:
    async def scenario() -> None:
        node = make_node("n1")
        scheduler._node_added(node)
        scheduler.queue.park("default/waiting")
        scheduler._node_updated(node, {**node, "status": {**node["status"], "conditions": []}})
        assert scheduler.queue.unschedulable == {"default/waiting"}
        scheduler._node_added(make_node("n2"))
        assert scheduler.queue.unschedulable == frozenset()
        scheduler.queue.shutdown()

    asyncio.run(scenario())
