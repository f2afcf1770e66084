"""Agent pieces without processes: launch specs, pod status, log tails, cgroup limit sums."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from provisioner.controlplane.agent.cgroups import Limits, pod_limits
from provisioner.controlplane.agent.launch import launch_spec
from provisioner.controlplane.agent.logs import tail
from provisioner.controlplane.agent.podstatus import ContainerView, pod_status

POD = {"metadata": {"name": "web-1", "namespace": "shop", "uid": "u1"}, "spec": {"nodeName": "n1"}}


@pytest.mark.parametrize(
    ("container", "argv"),
    [
        pytest.param({"command": ["sleep"], "args": ["5"]}, ("sleep", "5"), id="command-plus-args"),
        pytest.param({"args": ["sleep", "5"]}, ("sleep", "5"), id="args-alone-are-the-command-line"),
        pytest.param({"command": ["echo", "$(GREETING) $(MISSING) $$(GREETING)"],
                      "env": [{"name": "GREETING", "value": "hi"}]},
                     ("echo", "hi $(MISSING) $(GREETING)"), id="dollar-references-expand"),
    ],
)
def test_launch_spec_argv(container: dict[str, Any], argv: tuple[str, ...]) -> None:
    spec = launch_spec(POD, {"name": "c", "image": "busybox", **container}, address="127.0.0.5")
    assert spec.argv == argv
    assert not spec.placeholder


def test_container_without_command_runs_a_labelled_placeholder() -> None:
    spec = launch_spec(POD, {"name": "c", "image": "nginx"}, address="127.0.0.5")
    assert spec.placeholder
    assert spec.argv[:2] == ("/bin/sh", "-c")
    assert "'nginx' is recorded, not run" in spec.argv[-1]


def test_env_field_refs_and_unsupported_sources() -> None:
    container = {"name": "c", "command": ["true"], "workingDir": "/tmp", "env": [
        {"name": "POD", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
        {"name": "IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}},
        {"name": "SECRET", "valueFrom": {"secretKeyRef": {"name": "s", "key": "k"}}},
    ]}
    spec = launch_spec(POD, container, address="127.0.0.5")
    assert (spec.env["POD"], spec.env["IP"], spec.cwd) == ("web-1", "127.0.0.5", "/tmp")
    assert "SECRET" not in spec.env
    assert spec.problems == ("env SECRET: secretKeyRef is not supported by this agent",)


RUNNING = {"running": {"startedAt": "2026-01-01T00:00:00Z"}}


def terminated(code: int) -> dict[str, Any]:
    return {"terminated": {"exitCode": code, "reason": "Completed" if code == 0 else "Error"}}


@pytest.mark.parametrize(
    ("views", "phase", "ready"),
    [
        pytest.param([ContainerView("a", "i", {"waiting": {"reason": "ContainerCreating"}})], "Pending", "False",
                     id="creating-is-pending"),
        pytest.param([ContainerView("a", "i", RUNNING, ready=True)], "Running", "True", id="running-and-ready"),
        pytest.param([ContainerView("a", "i", RUNNING, ready=False)], "Running", "False", id="running-not-ready"),
        pytest.param([ContainerView("a", "i", terminated(0)), ContainerView("b", "i", terminated(0))],
                     "Succeeded", "False", id="all-exited-zero-succeeded"),
        pytest.param([ContainerView("a", "i", terminated(0)), ContainerView("b", "i", terminated(2))],
                     "Failed", "False", id="one-failed-failed"),
        pytest.param([ContainerView("a", "i", terminated(1), will_restart=True)], "Running", "False",
                     id="restarting-stays-running"),
        pytest.param([ContainerView("a", "i", {"waiting": {"reason": "CrashLoopBackOff"}}, restart_count=3,
                                    last_state=terminated(1))], "Running", "False", id="crashloop-is-running"),
    ],
)
def test_pod_phase_and_readiness(views: list[ContainerView], phase: str, ready: str) -> None:
    status = pod_status(pod=POD, containers=views, host_ip="127.0.0.5", start_time="t0", now="t1")
    conditions = {c["type"]: c["status"] for c in status["conditions"]}
    assert status["phase"] == phase
    assert conditions == {"Initialized": "True", "Ready": ready, "ContainersReady": ready, "PodScheduled": "True"}
    assert (status["podIP"], status["hostIP"]) == ("127.0.0.5", "127.0.0.5")


def test_condition_transition_time_is_kept_while_status_is_unchanged() -> None:
    view = [ContainerView("a", "i", RUNNING, ready=True)]
    first = pod_status(pod=POD, containers=view, host_ip="h", start_time="t0", now="t1")
    later = pod_status(pod={**POD, "status": first}, containers=view, host_ip="h", start_time="t0", now="t9")
    assert first == later


@pytest.mark.parametrize(
    ("content", "lines", "expected"),
    [
        pytest.param(b"a\nb\nc\n", 2, b"b\nc\n", id="last-two-lines"),
        pytest.param(b"a\nb\nc", 1, b"c", id="unterminated-last-line"),
        pytest.param(b"a\nb\n", 5, b"a\nb\n", id="fewer-lines-than-asked"),
        pytest.param(b"a\nb\n", 0, b"", id="zero-lines"),
        pytest.param(b"x" * 70000 + b"\n" + b"y" * 70000 + b"\n", 1, b"y" * 70000 + b"\n", id="lines-across-chunks"),
    ],
)
def test_tail(tmp_path: Path, content: bytes, lines: int, expected: bytes) -> None:
    path = tmp_path / "log"
    path.write_bytes(content)
    assert content[tail(path, lines):] == expected


@pytest.mark.parametrize(
    ("containers", "limits"),
    [
        pytest.param([{"resources": {"limits": {"cpu": "500m", "memory": "64Mi"}}},
                      {"resources": {"limits": {"cpu": "1", "memory": "1Gi"}}}],
                     Limits(1500, 64 * 2**20 + 2**30), id="sums-containers"),
        pytest.param([{"resources": {"limits": {"cpu": "500m"}}}, {}], Limits(None, None),
                     id="one-unlimited-container-unlimits-the-pod"),
    ],
)
def test_pod_limits(containers: list[dict[str, Any]], limits: Limits) -> None:
    assert pod_limits(containers) == limits
