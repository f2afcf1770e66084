"""Rollout arithmetic of the deployment loop: surge/unavailable resolution, new and old set sizes, hashes."""

from __future__ import annotations

import pytest

from provisioner.controlplane.controllers.rollout import (
    HASH_LABEL,
    SetView,
    new_set_replicas,
    old_set_scale_downs,
    paused_set_sizes,
    pod_template_hash,
    proportional_sizes,
    resolve_int_or_percent,
    surge_and_unavailable,
    templates_equal,
)


@pytest.mark.parametrize(
    ("value", "total", "round_up", "expected"),
    [
        (2, 10, True, 2),
        ("3", 10, False, 3),
        ("25%", 10, True, 3),
        ("25%", 10, False, 2),
        ("50%", 3, True, 2),
        ("50%", 3, False, 1),
        (None, 4, True, 1),
    ],
    ids=[
        "int",
        "numeric-string",
        "percent-rounded-up",
        "percent-rounded-down",
        "half-of-3-up",
        "half-of-3-down",
        "default-25-percent",
    ],
)
def test_int_or_percent_resolves_against_total(value, total, round_up, expected):
    assert resolve_int_or_percent(value, total, round_up=round_up) == expected


@pytest.mark.parametrize(
    ("rolling", "replicas", "expected"),
    [
        (None, 4, (1, 1)),
        ({"maxSurge": 0, "maxUnavailable": 0}, 3, (0, 1)),
        ({"maxSurge": "100%", "maxUnavailable": 0}, 3, (3, 0)),
        ({"maxSurge": 1, "maxUnavailable": 5}, 3, (1, 3)),
    ],
    ids=["defaults-25-percent", "both-zero-allows-one-unavailable", "blue-green-surge", "unavailable-capped"],
)
def test_surge_and_unavailable(rolling, replicas, expected):
    assert surge_and_unavailable(rolling, replicas) == expected


@pytest.mark.parametrize(
    ("replicas", "surge", "new", "total", "expected"),
    [
        (3, 1, 0, 3, 1),
        (3, 1, 1, 4, 1),
        (3, 1, 1, 3, 2),
        (3, 3, 0, 3, 3),
        (5, 1, 3, 3, 5),
        (3, 1, 5, 5, 3),
        (3, 1, 3, 3, 3),
    ],
    ids=[
        "first-surge-pod",
        "at-surge-limit-waits",
        "old-shrank-grow-again",
        "full-surge-at-once",
        "plain-scale-up",
        "scale-down-to-replicas",
        "steady",
    ],
)
def test_new_set_grows_within_surge(replicas, surge, new, total, expected):
    assert new_set_replicas(replicas=replicas, max_surge=surge, new=new, total=total) == expected


def test_old_sets_shrink_only_while_minimum_stays_available():
    olds = [SetView("old", replicas=3, available=3)]
    # the new pod is not available yet: 3 available, minimum 2 -> one old pod may go
    assert old_set_scale_downs(replicas=3, max_unavailable=1, new_replicas=1, new_available=0, olds=olds) == {"old": 2}
    # the new pod is available: 4 available, minimum 2 -> two old pods may go
    assert old_set_scale_downs(replicas=3, max_unavailable=1, new_replicas=1, new_available=1, olds=olds) == {"old": 1}


def test_old_sets_do_not_shrink_when_availability_is_at_the_minimum():
    olds = [SetView("old", replicas=2, available=2)]
    assert old_set_scale_downs(replicas=3, max_unavailable=1, new_replicas=2, new_available=0, olds=olds) == {}


def test_unavailable_old_pods_are_removed_first_oldest_set_first():
    olds = [SetView("oldest", replicas=2, available=0), SetView("older", replicas=2, available=2)]
    downs = old_set_scale_downs(replicas=4, max_unavailable=1, new_replicas=1, new_available=1, olds=olds)
    assert downs["oldest"] == 0
    assert downs.get("older", 2) == 2


def test_nothing_to_do_without_old_pods():
    assert (
        old_set_scale_downs(replicas=3, max_unavailable=1, new_replicas=3, new_available=3, olds=[SetView("old", 0, 0)])
        == {}
    )


def test_template_hash_is_stable_label_safe_and_ignores_its_own_label():
    template = {"metadata": {"labels": {"app": "web"}}, "spec": {"containers": [{"name": "c", "image": "i"}]}}
    labelled = {"metadata": {"labels": {"app": "web", HASH_LABEL: "x"}}, "spec": template["spec"]}
    first = pod_template_hash(template)
    assert first == pod_template_hash(labelled)
    assert first.isalnum() and first.islower() and len(first) <= 10
    assert templates_equal(template, labelled)


def test_template_hash_changes_with_template_and_collision_count():
    template = {"metadata": {"labels": {"app": "web"}}, "spec": {"containers": [{"name": "c", "image": "i"}]}}
    changed = {"metadata": template["metadata"], "spec": {"containers": [{"name": "c", "image": "j"}]}}
    assert pod_template_hash(template) != pod_template_hash(changed)
    assert pod_template_hash(template, 0) != pod_template_hash(template, 1)
    assert not templates_equal(template, changed)


@pytest.mark.parametrize(
    ("sizes", "total", "expected"),
    [
        ([("old", 2), ("new", 2)], 7, {"old": 3, "new": 4}),
        ([("old", 2), ("new", 2)], 3, {"old": 1, "new": 2}),
        ([("old", 3), ("new", 1)], 8, {"old": 6, "new": 2}),
        ([("a", 1), ("b", 1), ("c", 1)], 5, {"a": 1, "b": 2, "c": 2}),
        ([("old", 3), ("new", 1)], 0, {"old": 0, "new": 0}),
    ],
    ids=["up-newer-wins-tie", "down-older-loses-tie", "keeps-ratio", "three-sets", "to-zero"],
)
def test_proportional_split_keeps_the_total_and_the_ratio(sizes, total, expected):
    assert proportional_sizes(sizes, total) == expected
    assert sum(expected.values()) == total


def test_paused_single_active_set_takes_the_new_replica_count():
    sets = [("old", 0), ("current", 3)]
    assert paused_set_sizes(replicas=5, max_surge=2, sets=sets, scaling=True) == {"current": 5}
    assert paused_set_sizes(replicas=2, max_surge=1, sets=sets, scaling=True) == {"current": 2}
    assert paused_set_sizes(replicas=3, max_surge=1, sets=sets, scaling=False) == {}


def test_paused_without_active_sets_scales_the_current_templates_set():
    assert paused_set_sizes(replicas=4, max_surge=1, sets=[("old", 0), ("current", 0)], scaling=True) == {
        "current": 4
    }
    assert paused_set_sizes(replicas=4, max_surge=1, sets=[], scaling=True) == {}


def test_paused_mid_rollout_scales_active_sets_proportionally_within_surge():
    sets = [("old", 3), ("new", 1)]  # replicas 3 + surge 1, paused mid-rollout
    assert paused_set_sizes(replicas=6, max_surge=2, sets=sets, scaling=True) == {"old": 6, "new": 2}
    assert paused_set_sizes(replicas=1, max_surge=1, sets=sets, scaling=True) == {"old": 1}
    assert paused_set_sizes(replicas=0, max_surge=0, sets=sets, scaling=True) == {"old": 0, "new": 0}


def test_paused_mid_rollout_without_a_replica_change_leaves_the_sets_alone():
    assert paused_set_sizes(replicas=3, max_surge=1, sets=[("old", 2), ("new", 1)], scaling=False) == {}
