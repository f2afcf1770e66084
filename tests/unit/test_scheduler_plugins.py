"""Each scheduler plugin alone: pure functions of (pod, NodeInfo, CycleState), table-driven."""

from __future__ import annotations

from typing import Any

import pytest
from _scheduler_objects import make_node, make_pod, node_info

from provisioner.controlplane.scheduler.framework import PLUGINS, Code, CycleState, Status
from provisioner.controlplane.scheduler.snapshot import NodeInfo, PodInfo, Snapshot


def run_filter(plugin_name: str, pod: dict[str, Any], node: NodeInfo, *others: NodeInfo) -> Status:
    plugin = PLUGINS[plugin_name]()
    info = PodInfo.from_pod(pod)
    state = CycleState()
    if hasattr(plugin, "pre_filter"):
        status = plugin.pre_filter(info, Snapshot.of((node, *others)), state)
        if status.code is Code.SKIP:
            return Status()
        assert status.ok
    return plugin.filter(info, node, state)


TAINT = {"key": "dedicated", "value": "db", "effect": "NoSchedule"}


@pytest.mark.parametrize(
    ("plugin", "pod", "node", "code", "reasons"),
    [
        pytest.param("NodeUnschedulable", make_pod(), make_node(unschedulable=True), Code.UNRESOLVABLE,
                     ("node(s) were unschedulable",), id="unschedulable-node-rejects"),
        pytest.param("NodeUnschedulable",
                     make_pod(tolerations=[{"key": "node.kubernetes.io/unschedulable", "operator": "Exists"}]),
                     make_node(unschedulable=True), Code.SUCCESS, (), id="unschedulable-node-tolerated"),
        pytest.param("TaintToleration", make_pod(), make_node(taints=[TAINT]), Code.UNRESOLVABLE,
                     ("node(s) had untolerated taint {dedicated: db}",), id="untolerated-noschedule-taint"),
        pytest.param("TaintToleration",
                     make_pod(tolerations=[{"key": "dedicated", "operator": "Equal", "value": "db",
                                            "effect": "NoSchedule"}]),
                     make_node(taints=[TAINT]), Code.SUCCESS, (), id="tolerated-taint"),
        pytest.param("TaintToleration", make_pod(tolerations=[{"key": "dedicated", "value": "web"}]),
                     make_node(taints=[TAINT]), Code.UNRESOLVABLE,
                     ("node(s) had untolerated taint {dedicated: db}",), id="toleration-with-other-value"),
        pytest.param("TaintToleration", make_pod(tolerations=[{"operator": "Exists"}]),
                     make_node(taints=[TAINT]), Code.SUCCESS, (), id="wildcard-toleration"),
        pytest.param("TaintToleration", make_pod(),
                     make_node(taints=[{"key": "soft", "value": "", "effect": "PreferNoSchedule"}]),
                     Code.SUCCESS, (), id="prefer-noschedule-does-not-filter"),
        pytest.param("NodeAffinity", make_pod(nodeSelector={"disk": "ssd"}), make_node(labels={"disk": "hdd"}),
                     Code.UNRESOLVABLE, ("node(s) didn't match Pod's node affinity/selector",),
                     id="node-selector-mismatch"),
        pytest.param("NodeAffinity", make_pod(nodeSelector={"disk": "ssd"}), make_node(labels={"disk": "ssd"}),
                     Code.SUCCESS, (), id="node-selector-match"),
        pytest.param("NodeAffinity",
                     make_pod(affinity={"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {
                         "nodeSelectorTerms": [{"matchExpressions": [
                             {"key": "cores", "operator": "Gt", "values": ["8"]}]}]}}}),
                     make_node(labels={"cores": "4"}), Code.UNRESOLVABLE,
                     ("node(s) didn't match Pod's node affinity/selector",), id="affinity-gt-fails"),
        pytest.param("NodeAffinity",
                     make_pod(affinity={"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {
                         "nodeSelectorTerms": [
                             {"matchExpressions": [{"key": "zone", "operator": "In", "values": ["a"]}]},
                             {"matchFields": [{"key": "metadata.name", "operator": "In", "values": ["n1"]}]}]}}}),
                     make_node(labels={"zone": "b"}), Code.SUCCESS, (), id="affinity-terms-are-ored"),
        pytest.param("NodePorts", make_pod(container={"ports": [{"containerPort": 80, "hostPort": 8080}]}),
                     node_info(make_node(), make_pod("other", node="n1",
                                                     container={"ports": [{"containerPort": 1, "hostPort": 8080}]})),
                     Code.UNSCHEDULABLE, ("node(s) didn't have free ports for the requested pod ports",),
                     id="host-port-taken"),
        pytest.param("NodePorts",
                     make_pod(container={"ports": [{"containerPort": 80, "hostPort": 8080, "protocol": "UDP"}]}),
                     node_info(make_node(), make_pod("other", node="n1",
                                                     container={"ports": [{"containerPort": 1, "hostPort": 8080}]})),
                     Code.SUCCESS, (), id="same-port-other-protocol"),
        pytest.param("NodePorts",
                     make_pod(container={"ports": [{"containerPort": 80, "hostPort": 8080, "hostIP": "127.0.0.2"}]}),
                     node_info(make_node(), make_pod("other", node="n1", container={
                         "ports": [{"containerPort": 1, "hostPort": 8080, "hostIP": "127.0.0.3"}]})),
                     Code.SUCCESS, (), id="same-port-other-host-ip"),
        pytest.param("NodeResourcesFit", make_pod(cpu="3"), node_info(make_node(cpu="4"),
                                                                      make_pod("o", node="n1", cpu="2")),
                     Code.UNSCHEDULABLE, ("Insufficient cpu",), id="insufficient-cpu"),
        pytest.param("NodeResourcesFit", make_pod(cpu="3", memory="2Gi"),
                     node_info(make_node(cpu="4", memory="2Gi", pods="1"), make_pod("o", node="n1", cpu="2",
                                                                                     memory="1Gi")),
                     Code.UNSCHEDULABLE, ("Too many pods", "Insufficient cpu", "Insufficient memory"),
                     id="reports-every-short-resource"),
        pytest.param("NodeResourcesFit", make_pod(cpu="500m", memory="1Gi"), make_node(cpu="1", memory="1Gi"),
                     Code.SUCCESS, (), id="exact-fit"),
    ],
)
def test_filter(plugin: str, pod: dict[str, Any], node: dict[str, Any] | NodeInfo, code: Code,
                reasons: tuple[str, ...]) -> None:
    info = node if isinstance(node, NodeInfo) else node_info(node)
    status = run_filter(plugin, pod, info)
    assert (status.code, status.reasons) == (code, reasons)


def zone_node(name: str, zone: str, *pods: dict[str, Any]) -> NodeInfo:
    return node_info(make_node(name, labels={"zone": zone}), *pods)


def anti_affinity(key: str = "kubernetes.io/hostname", **match: str) -> dict[str, Any]:
    return {"podAntiAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": [
        {"labelSelector": {"matchLabels": match}, "topologyKey": key}]}}


def affinity(key: str = "zone", **match: str) -> dict[str, Any]:
    return {"podAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": [
        {"labelSelector": {"matchLabels": match}, "topologyKey": key}]}}


WEB = {"app": "web"}


@pytest.mark.parametrize(
    ("pod", "target", "other", "code", "reasons"),
    [
        pytest.param(make_pod(labels=WEB, affinity=anti_affinity(app="web")),
                     zone_node("n1", "a", make_pod("w1", node="n1", labels=WEB)), zone_node("n2", "b"),
                     Code.UNSCHEDULABLE, ("node(s) didn't match pod anti-affinity rules",),
                     id="anti-affinity-rejects-node-with-matching-pod"),
        pytest.param(make_pod(labels=WEB, affinity=anti_affinity(app="web")),
                     zone_node("n2", "b"), zone_node("n1", "a", make_pod("w1", node="n1", labels=WEB)),
                     Code.SUCCESS, (), id="anti-affinity-accepts-other-node"),
        pytest.param(make_pod(labels=WEB, affinity=anti_affinity("zone", app="web")),
                     zone_node("n2", "a"), zone_node("n1", "a", make_pod("w1", node="n1", labels=WEB)),
                     Code.UNSCHEDULABLE, ("node(s) didn't match pod anti-affinity rules",),
                     id="anti-affinity-by-zone-rejects-whole-zone"),
        pytest.param(make_pod(labels=WEB),
                     zone_node("n1", "a", make_pod("db", node="n1", affinity=anti_affinity(app="web"))),
                     zone_node("n2", "b"),
                     Code.UNSCHEDULABLE, ("node(s) didn't satisfy existing pods anti-affinity rules",),
                     id="existing-pod-anti-affinity-is-symmetric"),
        pytest.param(make_pod(affinity=affinity(app="cache")),
                     zone_node("n2", "b"), zone_node("n1", "a", make_pod("c", node="n1", labels={"app": "cache"})),
                     Code.UNRESOLVABLE, ("node(s) didn't match pod affinity rules",),
                     id="affinity-rejects-zone-without-matching-pod"),
        pytest.param(make_pod(affinity=affinity(app="cache")),
                     zone_node("n2", "a"), zone_node("n1", "a", make_pod("c", node="n1", labels={"app": "cache"})),
                     Code.SUCCESS, (), id="affinity-accepts-same-zone"),
        pytest.param(make_pod(labels={"app": "cache"}, affinity=affinity(app="cache")),
                     zone_node("n2", "b"), zone_node("n1", "a"),
                     Code.SUCCESS, (), id="first-pod-of-self-affine-group-may-go-anywhere"),
    ],
)
def test_inter_pod_affinity(pod: dict[str, Any], target: NodeInfo, other: NodeInfo, code: Code,
                            reasons: tuple[str, ...]) -> None:
    status = run_filter("InterPodAffinity", pod, target, other)
    assert (status.code, status.reasons) == (code, reasons)


def run_score(plugin_name: str, pod: dict[str, Any], *nodes: NodeInfo) -> dict[str, int]:
    plugin = PLUGINS[plugin_name]()
    info = PodInfo.from_pod(pod)
    state = CycleState()
    scores = {n.name: plugin.score(info, n, state) for n in nodes}
    if hasattr(plugin, "normalize"):
        plugin.normalize(info, scores, state)
    return scores


MB = 1024 * 1024


@pytest.mark.parametrize(
    ("n1_images", "n2_images", "expected"),
    [
        pytest.param({"nginx:latest": 1200 * MB}, {}, {"n1": 59, "n2": 0}, id="big-image-on-half-the-nodes"),
        pytest.param({"nginx:latest": 2500 * MB}, {}, {"n1": 100, "n2": 0}, id="capped-at-max"),
        pytest.param({"nginx:latest": 1200 * MB}, {"nginx:latest": 1200 * MB}, {"n1": 100, "n2": 100},
                     id="image-everywhere-gives-no-edge"),
        pytest.param({"nginx:latest": 0}, {}, {"n1": 0, "n2": 0}, id="sizeless-images-are-neutral"),
        pytest.param({"nginx:latest": 30 * MB}, {}, {"n1": 0, "n2": 0}, id="small-images-under-threshold"),
    ],
)
def test_image_locality(n1_images: dict[str, int], n2_images: dict[str, int], expected: dict[str, int]) -> None:
    plugin = PLUGINS["ImageLocality"]()
    pod = PodInfo.from_pod(make_pod(image="nginx"))
    nodes = [node_info(make_node("n1", images=n1_images)), node_info(make_node("n2", images=n2_images))]
    state = CycleState()
    skipped = plugin.pre_score(pod, Snapshot.of(nodes), nodes, state).code is Code.SKIP  # every node would score 0
    assert {n.name: 0 if skipped else plugin.score(pod, n, state) for n in nodes} == expected


def test_least_allocated_prefers_emptier_node() -> None:
    busy = node_info(make_node("busy", cpu="4", memory="4Gi"), make_pod("o", node="busy", cpu="3", memory="3Gi"))
    scores = run_score("NodeResourcesLeastAllocated", make_pod(cpu="500m", memory="512Mi"),
                       busy, node_info(make_node("idle", cpu="4", memory="4Gi")))
    assert scores["idle"] > scores["busy"]


def test_balanced_allocation_prefers_node_with_even_cpu_and_memory_use() -> None:
    cpu_heavy = node_info(make_node("cpu-heavy", cpu="4", memory="4Gi"),
                          make_pod("o", node="cpu-heavy", cpu="3", memory="100Mi"))
    even = node_info(make_node("even", cpu="4", memory="4Gi"), make_pod("o2", node="even", cpu="2", memory="2Gi"))
    scores = run_score("NodeResourcesBalancedAllocation", make_pod(cpu="100m", memory="100Mi"), cpu_heavy, even)
    assert scores["even"] > scores["cpu-heavy"]


def test_workload_spread_prefers_node_without_siblings() -> None:
    crowded = node_info(make_node("crowded"), make_pod("a", node="crowded", owner="rs1"),
                        make_pod("b", node="crowded", owner="rs1"))
    half = node_info(make_node("half"), make_pod("c", node="half", owner="rs1"), make_pod("x", node="half"))
    scores = run_score("WorkloadSpread", make_pod(owner="rs1"), crowded, half, node_info(make_node("empty")))
    assert scores == {"crowded": 0, "half": 50, "empty": 100}


def test_taint_toleration_score_prefers_node_without_prefer_noschedule_taints() -> None:
    soft = node_info(make_node("soft", taints=[{"key": "k", "value": "v", "effect": "PreferNoSchedule"}]))
    scores = run_score("TaintToleration", make_pod(), soft, node_info(make_node("clean")))
    assert scores == {"soft": 0, "clean": 100}
