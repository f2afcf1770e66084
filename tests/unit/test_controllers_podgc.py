"""Pod GC's pure judgements: which terminated pods go, and how long a missing node stays in quarantine."""

from __future__ import annotations

import pytest

from provisioner.controlplane.controllers.podgc import quarantined_nodes, terminated_to_collect


def pod(name, *, phase="Running", created="2026-01-01T00:00:00Z", deleting=False, namespace="ns"):
    meta = {"name": name, "namespace": namespace, "uid": f"uid-{name}", "creationTimestamp": created}
    if deleting:
        meta["deletionTimestamp"] = "2026-01-01T00:00:00Z"
    return {"metadata": meta, "spec": {"nodeName": "n1"}, "status": {"phase": phase}}


def names(pods):
    return [p["metadata"]["name"] for p in pods]


def test_terminated_pods_beyond_the_threshold_go_oldest_first():
    pods = [
        pod("running", created="2026-01-01T00:00:00Z"),
        pod("failed-new", phase="Failed", created="2026-01-01T00:00:03Z"),
        pod("done-old", phase="Succeeded", created="2026-01-01T00:00:01Z"),
        pod("done-mid", phase="Succeeded", created="2026-01-01T00:00:02Z"),
    ]
    assert names(terminated_to_collect(pods, threshold=1)) == ["done-old", "done-mid"]
    assert names(terminated_to_collect(pods, threshold=3)) == []


def test_equal_creation_times_go_in_name_order():
    pods = [pod(f"job-{i}", phase="Succeeded") for i in (2, 0, 1)]
    assert names(terminated_to_collect(pods, threshold=1)) == ["job-0", "job-1"]


@pytest.mark.parametrize("threshold", [0, -1], ids=["zero-disables", "negative-disables"])
def test_a_threshold_of_zero_disables_collection(threshold):
    assert terminated_to_collect([pod("done", phase="Succeeded")], threshold=threshold) == []


def test_pods_already_being_deleted_neither_count_nor_are_chosen():
    pods = [pod("going", phase="Failed", deleting=True), pod("done", phase="Failed"), pod("live")]
    assert terminated_to_collect(pods, threshold=1) == []


def test_a_missing_node_is_quarantined_from_when_it_was_first_missed():
    first = quarantined_nodes({}, bound_to=["gone", "here", "gone"], known={"here"}, now=10.0)
    assert first == {"gone": 10.0}
    later = quarantined_nodes(first, bound_to=["gone", "new-gone"], known={"here"}, now=15.0)
    assert later == {"gone": 10.0, "new-gone": 15.0}


def test_a_node_that_reappears_or_loses_its_pods_leaves_quarantine():
    absent = {"back": 1.0, "emptied": 1.0}
    assert quarantined_nodes(absent, bound_to=["back"], known={"back"}, now=5.0) == {}
