"""Expectations keep a loop from acting on a cache that has not yet seen its own writes."""

from __future__ import annotations

import pytest

from provisioner.controlplane.controllers.base import Controller
from provisioner.controlplane.controllers.expectations import Expectations
from provisioner.controlplane.controllers.registry import CONTROLLERS, table


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_unobserved_creations_block_until_each_is_seen():
    exp = Expectations(clock=Clock())
    exp.expect_adds("ns/rs", ["ns/p1", "ns/p2"])
    assert not exp.satisfied("ns/rs")
    exp.observed_add("ns/p1")
    assert not exp.satisfied("ns/rs")
    exp.observed_add("ns/p2")
    assert exp.satisfied("ns/rs")


def test_deletions_are_tracked_separately_from_creations():
    exp = Expectations(clock=Clock())
    exp.expect_deletes("ns/rs", ["ns/p1"])
    exp.observed_add("ns/p1")
    assert not exp.satisfied("ns/rs")
    exp.observed_delete("ns/p1")
    assert exp.satisfied("ns/rs")


def test_expectations_expire_after_ttl():
    clock = Clock()
    exp = Expectations(clock=clock, ttl=10)
    exp.expect_adds("ns/rs", ["ns/p1"])
    clock.now = 11
    assert exp.satisfied("ns/rs")


def test_owner_without_expectations_is_satisfied_and_forget_clears():
    exp = Expectations(clock=Clock())
    assert exp.satisfied("ns/other")
    exp.expect_adds("ns/rs", ["ns/p1"])
    exp.forget("ns/rs")
    assert exp.satisfied("ns/rs")


def test_registry_holds_every_loop_by_name():
    assert set(CONTROLLERS) == {
        "nodelifecycle",
        "replicaset",
        "deployment",
        "endpoints",
        "namespace",
        "garbagecollector",
        "podgc",
    }


def test_registry_refuses_duplicate_names():
    loop = CONTROLLERS["replicaset"]
    with pytest.raises(ValueError, match="duplicate"):
        table(loop, loop)
    assert issubclass(loop, Controller)
