"""Pure judgements of the loops about pods: deletion ranking, readiness, eviction delays, endpoints."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from provisioner.controlplane.controllers.endpoints import endpoint_subsets
from provisioner.controlplane.controllers.nodelifecycle import UNREACHABLE_TAINT, eviction_delay
from provisioner.controlplane.controllers.podstate import is_active, is_available
from provisioner.controlplane.controllers.replicaset import deletion_rank, pod_name
from provisioner.controlplane.scheduler.snapshot import Taint


def pod(
    name,
    *,
    node="n1",
    phase="Running",
    ready=True,
    ready_at="2026-01-01T00:00:00Z",
    created="2026-01-01T00:00:00Z",
    restarts=0,
    labels=None,
    ip="10.0.0.1",
    ports=None,
    deleting=False,
    tolerations=None,
):
    conditions = [{"type": "Ready", "status": "True" if ready else "False", "lastTransitionTime": ready_at}]
    meta = {
        "name": name,
        "namespace": "ns",
        "uid": f"uid-{name}",
        "creationTimestamp": created,
        "labels": labels or {"app": "web"},
    }
    if deleting:
        meta["deletionTimestamp"] = "2026-01-01T00:00:00Z"
    spec = {"containers": [{"name": "c", "image": "i", "ports": ports or []}], "tolerations": tolerations or []}
    if node:
        spec["nodeName"] = node
    return {
        "metadata": meta,
        "spec": spec,
        "status": {
            "phase": phase,
            "conditions": conditions,
            "podIP": ip,
            "containerStatuses": [{"name": "c", "restartCount": restarts}],
        },
    }


@pytest.mark.parametrize(
    ("first", "second"),
    [
        (pod("a", node=None, phase="Pending", ready=False), pod("b")),
        (pod("a", phase="Pending", ready=False), pod("b")),
        (pod("a", ready=False), pod("b")),
        (pod("a", ready_at="2026-01-02T00:00:00Z"), pod("b", ready_at="2026-01-01T00:00:00Z")),
        (pod("a", restarts=5), pod("b", restarts=0)),
        (pod("a", created="2026-01-02T00:00:00Z"), pod("b", created="2026-01-01T00:00:00Z")),
    ],
    ids=[
        "unscheduled-before-scheduled",
        "pending-before-running",
        "not-ready-before-ready",
        "recently-ready-before-long-ready",
        "restarted-before-stable",
        "newer-before-older",
    ],
)
def test_scale_down_deletes_the_less_valuable_pod_first(first, second):
    ranked = sorted([second, first], key=deletion_rank)
    assert ranked[0]["metadata"]["name"] == "a"


def test_pod_names_are_owner_name_and_five_safe_characters():
    name = pod_name("web-5d4f")
    prefix, suffix = name.rsplit("-", 1)
    assert prefix == "web-5d4f" and len(suffix) == 5 and not set(suffix) & set("aeiou013")


@pytest.mark.parametrize(
    ("p", "active"),
    [
        (pod("a"), True),
        (pod("a", deleting=True), False),
        (pod("a", phase="Succeeded"), False),
        (pod("a", phase="Failed"), False),
    ],
    ids=["running", "terminating", "succeeded", "failed"],
)
def test_active_pods_exclude_terminating_and_finished(p, active):
    assert is_active(p) is active


def test_available_needs_ready_for_min_ready_seconds():
    now = datetime(2026, 1, 1, 0, 0, 30, tzinfo=UTC)
    p = pod("a", ready_at="2026-01-01T00:00:00Z")
    assert is_available(p, min_ready_seconds=30, now=now)
    assert not is_available(p, min_ready_seconds=31, now=now)
    assert not is_available(pod("b", ready=False), min_ready_seconds=0, now=now)


UNREACHABLE = Taint(UNREACHABLE_TAINT, "", "NoExecute")


@pytest.mark.parametrize(
    ("tolerations", "expected"),
    [
        ([], 300.0),
        ([{"key": UNREACHABLE_TAINT, "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 5}], 5.0),
        ([{"key": UNREACHABLE_TAINT, "operator": "Exists"}], None),
        ([{"operator": "Exists"}], None),
        ([{"key": "other", "operator": "Exists", "tolerationSeconds": 1}], 300.0),
        ([{"key": UNREACHABLE_TAINT, "operator": "Exists", "effect": "NoSchedule", "tolerationSeconds": 1}], 300.0),
    ],
    ids=[
        "no-toleration-gets-default",
        "matching-toleration-seconds",
        "tolerated-for-ever",
        "wildcard-toleration",
        "other-key-ignored",
        "other-effect-ignored",
    ],
)
def test_eviction_delay_follows_the_matching_toleration(tolerations, expected):
    assert eviction_delay(pod("a", tolerations=tolerations), UNREACHABLE, default=300.0) == expected


def service(ports, *, publish=False):
    return {
        "metadata": {"name": "svc", "namespace": "ns"},
        "spec": {"selector": {"app": "web"}, "ports": ports, "publishNotReadyAddresses": publish},
    }


def test_endpoints_split_ready_and_not_ready_addresses_with_target_refs():
    subsets = endpoint_subsets(
        service([{"name": "http", "port": 80, "targetPort": 8080}]),
        [pod("a", ip="10.0.0.1"), pod("b", ip="10.0.0.2", ready=False, node="n2")],
    )
    assert subsets == [
        {
            "addresses": [
                {
                    "ip": "10.0.0.1",
                    "nodeName": "n1",
                    "targetRef": {"kind": "Pod", "namespace": "ns", "name": "a", "uid": "uid-a"},
                }
            ],
            "notReadyAddresses": [
                {
                    "ip": "10.0.0.2",
                    "nodeName": "n2",
                    "targetRef": {"kind": "Pod", "namespace": "ns", "name": "b", "uid": "uid-b"},
                }
            ],
            "ports": [{"name": "http", "port": 8080, "protocol": "TCP"}],
        }
    ]


def test_endpoints_resolve_named_target_ports_per_pod():
    svc = service([{"name": "web", "port": 80, "targetPort": "http"}])
    pods = [
        pod("a", ip="10.0.0.1", ports=[{"name": "http", "containerPort": 8080}]),
        pod("b", ip="10.0.0.2", ports=[{"name": "http", "containerPort": 9090}]),
    ]
    subsets = endpoint_subsets(svc, pods)
    assert [(s["addresses"][0]["ip"], s["ports"][0]["port"]) for s in subsets] == [
        ("10.0.0.1", 8080),
        ("10.0.0.2", 9090),
    ]


def test_endpoints_leave_out_pods_without_ip_terminating_or_finished():
    pods = [pod("a", ip=""), pod("b", deleting=True), pod("c", phase="Failed")]
    assert endpoint_subsets(service([{"port": 80}]), pods) == []


def test_endpoints_publish_not_ready_addresses_when_asked():
    subsets = endpoint_subsets(service([{"port": 80}], publish=True), [pod("a", ready=False)])
    assert [a["ip"] for a in subsets[0]["addresses"]] == ["10.0.0.1"]
    assert "notReadyAddresses" not in subsets[0]
