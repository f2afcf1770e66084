"""The framework around the plugins: message folding, scoring with weights, registry, cache and snapshot."""

from __future__ import annotations

import random

import pytest
from _scheduler_objects import make_node, make_pod, node_info

from provisioner.controlplane.scheduler import plugins  # noqa: F401
from provisioner.controlplane.scheduler.cache import SchedulerCache
from provisioner.controlplane.scheduler.framework import (
    ClusterEvent,
    Code,
    FitError,
    Framework,
    Profile,
    Status,
    register,
)
from provisioner.controlplane.scheduler.scheduler import DEFAULT_PROFILE
from provisioner.controlplane.scheduler.snapshot import PodInfo, Snapshot

TAINT = {"key": "k", "value": "v", "effect": "NoSchedule"}


def test_fit_error_folds_reasons_in_kubernetes_wording() -> None:
    nodes = Snapshot.of([
        node_info(make_node("n1", cpu="1")),
        node_info(make_node("n2", cpu="1")),
        node_info(make_node("n3", taints=[TAINT])),
    ])
    with pytest.raises(FitError) as caught:
        Framework(DEFAULT_PROFILE).schedule(PodInfo.from_pod(make_pod(cpu="2")), nodes)
    expected = "0/3 nodes are available: 2 Insufficient cpu, 1 node(s) had untolerated taint {k: v}."
    assert caught.value.message == expected


def test_fit_error_counts_every_short_resource_of_a_node() -> None:
    nodes = Snapshot.of([node_info(make_node("n1", cpu="1", memory="1Gi"))])
    with pytest.raises(FitError) as caught:
        Framework(DEFAULT_PROFILE).schedule(PodInfo.from_pod(make_pod(cpu="2", memory="2Gi")), nodes)
    assert caught.value.message == "0/1 nodes are available: 1 Insufficient cpu, 1 Insufficient memory."


def test_no_nodes_gives_zero_of_zero() -> None:
    with pytest.raises(FitError) as caught:
        Framework(DEFAULT_PROFILE).schedule(PodInfo.from_pod(make_pod()), Snapshot.of([]))
    assert caught.value.message == "0/0 nodes are available."


def test_schedule_picks_the_only_feasible_node() -> None:
    nodes = Snapshot.of([node_info(make_node("n1", taints=[TAINT])), node_info(make_node("n2"))])
    assert Framework(DEFAULT_PROFILE).schedule(PodInfo.from_pod(make_pod()), nodes) == "n2"


def test_weights_decide_between_plugins() -> None:
    with_image = node_info(make_node("img", images={"nginx:latest": 2000 * 2**20}),
                           make_pod("a", node="img", owner="rs"), make_pod("b", node="img", owner="rs"))
    empty = node_info(make_node("empty"))
    pod = PodInfo.from_pod(make_pod(image="nginx", owner="rs"))
    spread_wins = Profile(filters=(), scores=(("ImageLocality", 1), ("WorkloadSpread", 2)))
    image_wins = Profile(filters=(), scores=(("ImageLocality", 3), ("WorkloadSpread", 1)))
    snapshot = Snapshot.of([with_image, empty])
    assert Framework(spread_wins).schedule(pod, snapshot) == "empty"
    assert Framework(image_wins).schedule(pod, snapshot) == "img"


def test_ties_are_broken_at_random_among_the_best() -> None:
    snapshot = Snapshot.of([node_info(make_node(f"n{i}")) for i in range(3)])
    framework = Framework(DEFAULT_PROFILE, random.Random(7))
    chosen = {framework.schedule(PodInfo.from_pod(make_pod()), snapshot) for _ in range(30)}
    assert chosen == {"n0", "n1", "n2"}


def test_large_clusters_stop_filtering_after_enough_feasible_nodes() -> None:
    adaptive = Framework(Profile(filters=(), scores=()))
    assert (adaptive._num_to_find(50), adaptive._num_to_find(1000), adaptive._num_to_find(5000)) == (50, 420, 500)
    default = Framework(DEFAULT_PROFILE)
    assert (default._num_to_find(50), default._num_to_find(1000), default._num_to_find(5000)) == (50, 100, 500)


def test_unknown_plugin_in_profile_fails_at_start() -> None:
    with pytest.raises(ValueError, match="NoSuchPlugin"):
        Framework(Profile(filters=("NoSuchPlugin",), scores=()))


def test_duplicate_plugin_name_fails_at_registration() -> None:
    class Again:
        name = "TaintToleration"

    with pytest.raises(ValueError, match="registered twice"):
        register(Again)


def test_prefilter_rejection_is_reported_for_all_nodes() -> None:
    class Gate:
        name = "TestGate"

        def pre_filter(self, pod: object, snapshot: object, state: object) -> Status:
            return Status(Code.UNRESOLVABLE, ("pod is gated",))

    from provisioner.controlplane.scheduler.framework import PLUGINS

    register(Gate)
    try:
        with pytest.raises(FitError) as caught:
            Framework(Profile(filters=("TestGate",), scores=())).schedule(
                PodInfo.from_pod(make_pod()), Snapshot.of([node_info(make_node())]))
        assert caught.value.message == "0/1 nodes are available: pod is gated."
    finally:
        del PLUGINS["TestGate"]


def test_assumed_pod_counts_until_forgotten() -> None:
    cache = SchedulerCache()
    cache.set_node(make_node("n1", cpu="1"))
    pod = PodInfo.from_pod(make_pod("a", cpu="600m"))
    cache.assume(pod, "n1")
    second = PodInfo.from_pod(make_pod("b", cpu="600m"))
    with pytest.raises(FitError, match="Insufficient cpu"):
        Framework(DEFAULT_PROFILE).schedule(second, cache.snapshot())
    cache.forget(pod.key)
    assert Framework(DEFAULT_PROFILE).schedule(second, cache.snapshot()) == "n1"


def test_confirmed_pod_survives_forget_and_moves_with_its_node() -> None:
    cache = SchedulerCache()
    cache.set_node(make_node("n1"))
    cache.assume(PodInfo.from_pod(make_pod("a", cpu="1")), "n1")
    cache.add_pod(PodInfo.from_pod(make_pod("a", node="n1", cpu="1")))
    cache.forget("default/a")
    assert cache.node("n1").requested.milli_cpu == 1000  # type: ignore[union-attr]
    cache.remove_pod("default/a")
    assert cache.node("n1").requested.milli_cpu == 0  # type: ignore[union-attr]


def test_pods_seen_before_their_node_are_counted_when_it_appears() -> None:
    cache = SchedulerCache()
    cache.add_pod(PodInfo.from_pod(make_pod("a", node="late", cpu="2")))
    cache.set_node(make_node("late"))
    assert cache.node("late").requested.milli_cpu == 2000  # type: ignore[union-attr]


def test_heartbeat_only_node_update_is_not_a_scheduling_event() -> None:
    cache = SchedulerCache()
    node = make_node("n1")
    assert cache.set_node(node) is True
    heartbeat = {**node, "status": {**node["status"], "conditions": [{"type": "Ready", "status": "True"}]}}
    assert cache.set_node(heartbeat) is False
    assert cache.set_node(make_node("n1", taints=[TAINT])) is True


def test_snapshot_is_not_changed_by_later_assumptions() -> None:
    cache = SchedulerCache()
    cache.set_node(make_node("n1"))
    before = cache.snapshot()
    cache.assume(PodInfo.from_pod(make_pod("a", cpu="1")), "n1")
    assert before.by_name["n1"].requested.milli_cpu == 0
    assert cache.snapshot().by_name["n1"].requested.milli_cpu == 1000


def test_requeue_events_come_from_the_rejecting_plugins() -> None:
    framework = Framework(DEFAULT_PROFILE)
    snapshot = Snapshot.of([node_info(make_node("n1", taints=[TAINT])),
                            node_info(make_node("n2", cpu="1"))])
    with pytest.raises(FitError) as caught:
        framework.schedule(PodInfo.from_pod(make_pod(cpu="2")), snapshot)
    assert caught.value.plugins == {"TaintToleration", "NodeResourcesFit"}
    assert framework.requeue_events(caught.value) == {
        ClusterEvent.NODE_ADDED, ClusterEvent.NODE_CHANGED, ClusterEvent.POD_DELETED}


def test_own_binding_is_confirmed_without_reparsing_and_elsewhere_is_not() -> None:
    cache = SchedulerCache()
    cache.set_node(make_node("n1"))
    cache.set_node(make_node("n2"))
    cache.assume(PodInfo.from_pod(make_pod("a", cpu="1")), "n1")
    assert cache.confirm("default/a", "n2") is False
    assert cache.confirm("default/a", "n1") is True
    assert not cache.is_assumed("default/a")
    assert cache.node("n1").requested.milli_cpu == 1000  # type: ignore[union-attr]
