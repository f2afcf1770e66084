"""Pod workers with real processes: restarts, back-off, probes on loopback, termination, adoption, cgroups."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import sys
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from provisioner.controlplane.agent.cgroups import Cgroups, NoCgroups, detect_cgroups
from provisioner.controlplane.agent.runtime import Runtime
from provisioner.controlplane.agent.worker import PodWorker, WorkerSettings

SETTINGS = WorkerSettings(node_name="n1", address="127.0.0.1", backoff_base=0.2, backoff_cap=1.0)
WAIT = 20.0


class Harness:
    """A worker plus the statuses and Events it reported."""

    def __init__(self, root: Path, cgroups: Cgroups | None = None) -> None:
        self.runtime = Runtime(root)
        self.cgroups = cgroups or NoCgroups("test")
        self.statuses: list[dict[str, Any]] = []
        self.events: list[tuple[str, str, str]] = []
        self.images: set[str] = set()

    def worker(self, pod: dict[str, Any]) -> PodWorker:
        return PodWorker(pod, runtime=self.runtime, cgroups=self.cgroups, settings=SETTINGS,
                         on_status=lambda _w, s: self.statuses.append(s),
                         on_event=lambda _o, t, r, m: self.events.append((t, r, m)), on_image=self.images.add)

    @property
    def status(self) -> dict[str, Any]:
        return self.statuses[-1]

    def container(self, name: str = "c") -> dict[str, Any]:
        return next(c for c in self.status["containerStatuses"] if c["name"] == name)

    async def until(self, predicate: Callable[[], bool], what: str) -> None:
        try:
            async with asyncio.timeout(WAIT):
                while not (self.statuses and predicate()):
                    await asyncio.sleep(0.05)
        except TimeoutError:
            raise AssertionError(f"never saw {what}; last status: {self.statuses[-1:] }") from None


def make_pod(*containers: dict[str, Any], restart: str = "Always", grace: int = 30) -> dict[str, Any]:
    uid = uuid.uuid4().hex
    return {
        "metadata": {"name": f"p-{uid[:6]}", "namespace": "default", "uid": uid},
        "spec": {"nodeName": "n1", "restartPolicy": restart, "terminationGracePeriodSeconds": grace,
                 "containers": [{"name": "c", "image": "busybox", **c} for c in containers]},
    }


def scenario(body: Callable[[Harness], Awaitable[None]], root: Path, cgroups: Cgroups | None = None) -> Harness:
    harness = Harness(root, cgroups)
    asyncio.run(body(harness))
    return harness


async def run_until_stopped(harness: Harness, worker: PodWorker, check: Callable[[], Awaitable[None]]) -> None:
    task = asyncio.create_task(worker.run())
    try:
        await check()
    finally:
        worker.request_stop(grace=0, delete_from_api=True)
        await asyncio.wait_for(task, WAIT)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_completed_container_with_restart_never_makes_the_pod_succeed(tmp_path: Path) -> None:
    async def body(h: Harness) -> None:
        worker = h.worker(make_pod({"command": ["sh", "-c", "echo hello; echo oops >&2"]}, restart="Never"))

        async def check() -> None:
            await h.until(lambda: h.status["phase"] == "Succeeded", "Succeeded")
            state = h.container()["state"]["terminated"]
            assert (state["exitCode"], state["reason"]) == (0, "Completed")
            log = h.runtime.attempts(worker.uid, "c")[-1].log_file.read_text()
            assert log == "hello\noops\n"

        await run_until_stopped(h, worker, check)
    harness = scenario(body, tmp_path)
    assert harness.images == {"busybox"}


def test_failing_container_with_restart_never_makes_the_pod_fail(tmp_path: Path) -> None:
    async def body(h: Harness) -> None:
        worker = h.worker(make_pod({"command": ["sh", "-c", "exit 3"]}, restart="Never"))

        async def check() -> None:
            await h.until(lambda: h.status["phase"] == "Failed", "Failed")
            assert h.container()["state"]["terminated"]["exitCode"] == 3
            assert h.container()["restartCount"] == 0

        await run_until_stopped(h, worker, check)
    scenario(body, tmp_path)


def test_crashing_container_restarts_with_crashloop_backoff(tmp_path: Path) -> None:
    async def body(h: Harness) -> None:
        worker = h.worker(make_pod({"command": ["sh", "-c", "exit 1"]}))

        async def check() -> None:
            await h.until(lambda: h.container()["restartCount"] >= 3, "three restarts")
            await h.until(lambda: h.container()["state"].get("waiting", {}).get("reason") == "CrashLoopBackOff",
                          "CrashLoopBackOff")
            assert h.container()["lastState"]["terminated"]["exitCode"] == 1
            assert h.status["phase"] == "Running"

        await run_until_stopped(h, worker, check)
    scenario(body, tmp_path)


def test_on_failure_does_not_restart_a_clean_exit(tmp_path: Path) -> None:
    async def body(h: Harness) -> None:
        worker = h.worker(make_pod({"command": ["true"]}, restart="OnFailure"))

        async def check() -> None:
            await h.until(lambda: h.status["phase"] == "Succeeded", "Succeeded")
            await asyncio.sleep(0.5)
            assert len(h.runtime.attempts(worker.uid, "c")) == 1

        await run_until_stopped(h, worker, check)
    scenario(body, tmp_path)


def test_missing_executable_is_a_clear_start_error(tmp_path: Path) -> None:
    async def body(h: Harness) -> None:
        worker = h.worker(make_pod({"command": ["/no/such/program"]}, restart="Never"))

        async def check() -> None:
            await h.until(lambda: h.status["phase"] == "Failed", "Failed")
            state = h.container()["state"]["terminated"]
            assert (state["exitCode"], state["reason"]) == (127, "StartError")
            assert "/no/such/program" in state["message"]

        await run_until_stopped(h, worker, check)
    scenario(body, tmp_path)


def test_readiness_http_probe_follows_the_server(tmp_path: Path) -> None:
    port = free_port()
    serve = f"sleep 1; exec {sys.executable} -m http.server {port} --bind 127.0.0.1"
    probe = {"httpGet": {"path": "/", "port": "web"}, "periodSeconds": 1, "failureThreshold": 1}

    async def body(h: Harness) -> None:
        worker = h.worker(make_pod({"command": ["sh", "-c", serve], "readinessProbe": probe,
                                    "ports": [{"name": "web", "containerPort": port}]}))

        async def check() -> None:
            await h.until(lambda: h.status["phase"] == "Running", "Running")
            assert h.container()["ready"] is False
            await h.until(lambda: h.container()["ready"], "ready")
            conditions = {c["type"]: c["status"] for c in h.status["conditions"]}
            assert conditions["Ready"] == "True"

        await run_until_stopped(h, worker, check)
    scenario(body, tmp_path)


def test_readiness_tcp_probe_fails_without_listener(tmp_path: Path) -> None:
    probe = {"tcpSocket": {"port": free_port()}, "periodSeconds": 1}

    async def body(h: Harness) -> None:
        worker = h.worker(make_pod({"command": ["sleep", "30"], "readinessProbe": probe}))

        async def check() -> None:
            await h.until(lambda: h.status["phase"] == "Running", "Running")
            await asyncio.sleep(2.5)
            assert h.container()["ready"] is False

        await run_until_stopped(h, worker, check)
    scenario(body, tmp_path)


def test_failing_liveness_exec_probe_restarts_the_container(tmp_path: Path) -> None:
    marker = tmp_path / "healthy"
    marker.touch()
    probe = {"exec": {"command": ["test", "-e", str(marker)]}, "periodSeconds": 1, "failureThreshold": 2}

    async def body(h: Harness) -> None:
        worker = h.worker(make_pod({"command": ["sleep", "300"], "livenessProbe": probe}, grace=1))

        async def check() -> None:
            await h.until(lambda: "running" in h.container()["state"], "running")
            marker.unlink()
            await h.until(lambda: h.container()["restartCount"] >= 1, "a restart")
            assert h.container()["lastState"]["terminated"]["exitCode"] == 143  # SIGTERM
            assert ("Normal", "Killing", "Container c failed liveness probe, will be restarted") in h.events

        await run_until_stopped(h, worker, check)
    scenario(body, tmp_path)


def test_termination_sends_sigterm_then_sigkill_after_the_grace_period(tmp_path: Path) -> None:
    async def body(h: Harness) -> None:
        polite = {"name": "polite", "command": ["sh", "-c", "trap 'echo bye; exit 0' TERM; sleep 300 & wait"]}
        stubborn = {"name": "stubborn", "command": ["sh", "-c", "trap '' TERM; sleep 300 & wait; sleep 300"]}
        worker = h.worker(make_pod(polite, stubborn))
        task = asyncio.create_task(worker.run())
        await h.until(lambda: all("running" in c["state"] for c in h.status["containerStatuses"]), "running")
        await asyncio.sleep(0.3)  # let the shells install their traps
        loop = asyncio.get_running_loop()
        started = loop.time()
        worker.request_stop(grace=1.5, delete_from_api=True)
        await asyncio.wait_for(task, WAIT)
        assert loop.time() - started >= 1.5
        assert h.container("polite")["state"]["terminated"]["exitCode"] == 0
        assert h.container("stubborn")["state"]["terminated"]["exitCode"] == 137
        assert h.runtime.attempts(worker.uid, "polite")[-1].log_file.read_text() == "bye\n"
    scenario(body, tmp_path)


def test_restarted_worker_adopts_running_containers_instead_of_starting_new_ones(tmp_path: Path) -> None:
    pod = make_pod({"command": ["sleep", "300"]})

    async def first(h: Harness) -> None:
        worker = h.worker(pod)
        task = asyncio.create_task(worker.run())
        await h.until(lambda: "running" in h.container()["state"], "running")
        task.cancel()  # the agent dies; the container must not
        await asyncio.gather(task, return_exceptions=True)

    before = scenario(first, tmp_path)
    attempt = before.runtime.attempts(pod["metadata"]["uid"], "c")[-1]
    pid = attempt.process()["pid"]  # type: ignore[index]
    os.kill(pid, 0)  # still alive after the worker was cancelled

    async def second(h: Harness) -> None:
        worker = h.worker(pod)

        async def check() -> None:
            await h.until(lambda: "running" in h.container()["state"], "running")
            assert len(h.runtime.attempts(worker.uid, "c")) == 1
            assert h.container()["containerID"] == attempt.container_id
            os.kill(pid, signal.SIGKILL)  # now it dies: the adopted attempt's exit is noticed and it restarts
            await h.until(lambda: h.container()["restartCount"] == 1, "restart after adopted exit")
            assert h.container()["lastState"]["terminated"]["exitCode"] == 137

        await run_until_stopped(h, worker, check)
    scenario(second, tmp_path)


def test_pod_runs_in_its_own_cgroup_with_limits(tmp_path: Path) -> None:
    cgroups = detect_cgroups(parent=f"provisioner-test-{os.getpid()}")
    assert not cgroups.problem, cgroups.problem
    limits = {"limits": {"cpu": "250m", "memory": "64Mi"}}

    async def body(h: Harness) -> None:
        worker = h.worker(make_pod({"command": ["sleep", "300"], "resources": limits}))

        async def check() -> None:
            await h.until(lambda: "running" in h.container()["state"], "running")
            pid = h.runtime.attempts(worker.uid, "c")[-1].process()["pid"]  # type: ignore[index]
            membership = Path(f"/proc/{pid}/cgroup").read_text()
            assert f"provisioner-test-{os.getpid()}/{worker.uid}" in membership
            if cgroups.name == "cgroup1":
                base = Path("/sys/fs/cgroup")
                group = f"provisioner-test-{os.getpid()}/{worker.uid}"
                assert (base / "memory" / group / "memory.limit_in_bytes").read_text().strip() == str(64 * 2**20)
                assert (base / "cpu" / group / "cpu.cfs_quota_us").read_text().strip() == "25000"
            else:
                group = Path("/sys/fs/cgroup") / f"provisioner-test-{os.getpid()}" / worker.uid
                assert (group / "memory.max").read_text().strip() == str(64 * 2**20)
                assert (group / "cpu.max").read_text().split() == ["25000", "100000"]

        await run_until_stopped(h, worker, check)
    try:
        scenario(body, tmp_path, cgroups)
    finally:
        for base in (Path("/sys/fs/cgroup") / c / f"provisioner-test-{os.getpid()}" for c in ("cpu", "memory", "pids")):
            if base.exists():
                base.rmdir()
        if (Path("/sys/fs/cgroup/cgroup.controllers")).exists():
            (Path("/sys/fs/cgroup") / f"provisioner-test-{os.getpid()}").rmdir()
