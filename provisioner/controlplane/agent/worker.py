"""One pod's worker: its containers' restart loops, probes, status and graceful termination.

The agent runs exactly one `PodWorker` task per pod (keyed by uid); nothing else touches the pod's
processes. Each container has a `ContainerRunner` that starts or adopts an attempt, runs its probes
while it lives, and applies restartPolicy with exponential back-off (CrashLoopBackOff). Every state
change recomputes the pod status and hands it to the agent's status writer.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any

from provisioner.controlplane.agent.cgroups import Cgroups, pod_limits
from provisioner.controlplane.agent.launch import LaunchSpec, launch_spec
from provisioner.controlplane.agent.podstatus import ContainerView, pod_status
from provisioner.controlplane.agent.probes import Prober, check
from provisioner.controlplane.agent.runtime import Attempt, Runtime

__all__ = ["ContainerRunner", "PodWorker", "WorkerSettings"]

log = logging.getLogger(__name__)

_BACKOFF_RESET_AFTER = 600.0  # a container that ran this long starts its back-off afresh
StatusSink = Callable[["PodWorker", dict[str, Any]], None]
EventSink = Callable[[Mapping[str, Any], str, str, str], None]


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass(frozen=True)
class WorkerSettings:
    node_name: str
    address: str
    backoff_base: float = 10.0
    backoff_cap: float = 300.0


class ContainerRunner:
    """One container of one pod, from first start to its last exit."""

    def __init__(self, worker: PodWorker, spec: Mapping[str, Any]) -> None:
        self.worker = worker
        self.spec = spec
        self.name: str = spec["name"]
        self.view = ContainerView(self.name, spec.get("image", ""),
                                  {"waiting": {"reason": "ContainerCreating"}})
        self._crashes = 0
        self._ready = "readinessProbe" not in spec

    # -- state ------------------------------------------------------------------------------------
    def _set(self, **changes: Any) -> None:
        self.view = replace(self.view, **changes)
        self.worker.report()

    def _running(self, attempt: Attempt) -> None:
        process = attempt.process() or {}
        self._set(state={"running": {"startedAt": process.get("startedAt", _now())}}, restart_count=attempt.index,
                  container_id=attempt.container_id, started=True, ready=self._ready, will_restart=False)

    def _terminated(self, attempt: Attempt, exit_record: Mapping[str, Any], *, will_restart: bool) -> None:
        code = int(exit_record.get("exitCode", 0))
        terminated = {
            "exitCode": code,
            "reason": exit_record.get("reason") or ("Completed" if code == 0 else "Error"),
            "startedAt": (attempt.process() or {}).get("startedAt") or exit_record.get("finishedAt"),
            "finishedAt": exit_record.get("finishedAt", _now()),
            "containerID": attempt.container_id,
        }
        if exit_record.get("message"):
            terminated["message"] = exit_record["message"]
        if exit_record.get("signal"):
            terminated["signal"] = exit_record["signal"]
        self._set(state={"terminated": terminated}, restart_count=attempt.index, container_id=attempt.container_id,
                  ready=False, started=False, will_restart=will_restart)

    # -- lifecycle ----------------------------------------------------------------------------------
    def _should_restart(self, exit_code: int) -> bool:
        policy = (self.worker.pod.get("spec") or {}).get("restartPolicy", "Always")
        return policy == "Always" or (policy == "OnFailure" and exit_code != 0)

    async def run(self) -> None:
        attempts = self.worker.runtime.attempts(self.worker.uid, self.name)
        attempt = attempts[-1] if attempts else None
        if attempt is not None and not attempt.shim_alive() and attempt.exit() is None:
            attempt = None  # its start never completed: start afresh
        if attempt is not None and attempt.exit() is None:
            log.info("%s/%s: adopting running attempt %d", self.worker.key, self.name, attempt.index)
        while True:
            if attempt is None:
                attempt = await self._start()
                if self.worker.stopping:  # stopped while starting: the terminator may not have seen it
                    await self.worker.kill(attempt, 0)
            if attempt.exit() is None:
                self._running(attempt)
            exit_record = await self._supervise(attempt)
            code = int(exit_record.get("exitCode", 0))
            restart = not self.worker.stopping and self._should_restart(code)
            self._terminated(attempt, exit_record, will_restart=restart)
            if not restart:
                return
            self._crashes = 1 if attempt.ran_for() > _BACKOFF_RESET_AFTER else self._crashes + 1
            if self._crashes > 1:  # the first restart is immediate, then 1x, 2x, 4x... the base delay
                settings = self.worker.settings
                delay = min(settings.backoff_base * 2 ** (self._crashes - 2), settings.backoff_cap)
                message = f"back-off {delay:g}s restarting failed container={self.name} pod={self.worker.name}"
                self._set(last_state=self.view.state, state={"waiting": {"reason": "CrashLoopBackOff",
                                                                         "message": message}})
                if await self.worker.wait_stopping(delay):
                    return
            else:
                self._set(last_state=self.view.state)
            attempt = None

    async def _start(self) -> Attempt:
        spec: LaunchSpec = launch_spec(self.worker.pod, self.spec, address=self.worker.settings.address)
        if spec.placeholder:
            self.worker.event("Warning", "NoCommand",
                              f"container {self.name}: no command or args; image {self.spec.get('image')!r} is "
                              "recorded, not run; an idle placeholder process runs instead")
        for problem in spec.problems:
            self.worker.event("Warning", "UnsupportedEnv", f"container {self.name}: {problem}")
        attempt = await self.worker.runtime.start(
            self.worker.uid, self.name, argv=spec.argv, env=spec.env, cwd=spec.cwd,
            cgroup_procs=self.worker.cgroup_procs,
        )
        self.worker.saw_image(self.spec.get("image", ""))
        return attempt

    async def _supervise(self, attempt: Attempt) -> dict[str, Any]:
        """Wait for the attempt to end while its probes run."""
        if attempt.exit() is not None:
            return await self.worker.runtime.wait(attempt)
        launch = launch_spec(self.worker.pod, self.spec, address=self.worker.settings.address)
        async with asyncio.TaskGroup() as group:
            probes = []
            if "livenessProbe" in self.spec:
                probes.append(group.create_task(self._probe(attempt, self.spec["livenessProbe"], launch, True)))
            if "readinessProbe" in self.spec:
                probes.append(group.create_task(self._probe(attempt, self.spec["readinessProbe"], launch, False)))
            exit_record = await self.worker.runtime.wait(attempt)
            for task in probes:
                task.cancel()
        return exit_record

    async def _probe(self, attempt: Attempt, probe: Mapping[str, Any], launch: LaunchSpec, liveness: bool) -> None:
        prober = Prober(probe, initially=liveness)
        ports = {p["name"]: int(p["containerPort"]) for p in self.spec.get("ports") or [] if p.get("name")}
        await asyncio.sleep(prober.initial_delay)
        while True:
            result = await check(probe, host=self.worker.settings.address, named_ports=ports, env=launch.env,
                                 cwd=launch.cwd)
            if prober.record(result) or not liveness:
                if liveness and not prober.passing:
                    self.worker.event("Warning", "Unhealthy", f"Liveness probe failed: {result.message}")
                    self.worker.event("Normal", "Killing",
                                      f"Container {self.name} failed liveness probe, will be restarted")
                    await self.worker.kill(attempt, self.worker.grace_period())
                    return
                if not liveness and self._ready != prober.passing:
                    self._ready = prober.passing
                    if not prober.passing:
                        self.worker.event("Warning", "Unhealthy", f"Readiness probe failed: {result.message}")
                    self._set(ready=prober.passing)
            await asyncio.sleep(prober.period)


class PodWorker:
    """Runs one pod until it is deleted; `request_stop(grace)` terminates it gracefully."""

    def __init__(
        self,
        pod: Mapping[str, Any],
        *,
        runtime: Runtime,
        cgroups: Cgroups,
        settings: WorkerSettings,
        on_status: StatusSink,
        on_event: EventSink,
        on_image: Callable[[str], None],
    ) -> None:
        meta = pod["metadata"]
        self.pod = pod
        self.uid: str = meta["uid"]
        self.namespace: str = meta.get("namespace", "default")
        self.name: str = meta["name"]
        self.key = f"{self.namespace}/{self.name}"
        self.runtime = runtime
        self.cgroups = cgroups
        self.settings = settings
        self.cgroup_procs: list[Any] = []
        self.start_time = (pod.get("status") or {}).get("startTime") or _now()
        self.delete_from_api = False
        self._on_status = on_status
        self._on_event = on_event
        self._on_image = on_image
        self._stop = asyncio.Event()
        self._grace: float | None = None
        self.runners = [ContainerRunner(self, c) for c in (pod.get("spec") or {}).get("containers") or []]

    @property
    def stopping(self) -> bool:
        return self._stop.is_set()

    def update(self, pod: Mapping[str, Any]) -> None:
        self.pod = pod

    def grace_period(self) -> float:
        meta, spec = self.pod["metadata"], self.pod.get("spec") or {}
        for value in (meta.get("deletionGracePeriodSeconds"), spec.get("terminationGracePeriodSeconds")):
            if value is not None:
                return float(value)
        return 30.0

    def request_stop(self, *, grace: float, delete_from_api: bool) -> None:
        self.delete_from_api = self.delete_from_api or delete_from_api
        self._grace = grace if self._grace is None else min(grace, self._grace)
        self._stop.set()

    async def wait_stopping(self, timeout: float) -> bool:
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(timeout):
                await self._stop.wait()
        return self._stop.is_set()

    def report(self) -> None:
        status = pod_status(pod=self.pod, containers=[r.view for r in self.runners], host_ip=self.settings.address,
                            start_time=self.start_time, now=_now())
        self._on_status(self, status)

    def event(self, type_: str, reason: str, message: str) -> None:
        self._on_event(self.pod, type_, reason, message)

    def saw_image(self, image: str) -> None:
        if image:
            self._on_image(image)

    async def kill(self, attempt: Attempt, grace: float) -> None:
        """SIGTERM, then SIGKILL after `grace` seconds if the attempt still runs."""
        self.runtime.signal(attempt, signal.SIGTERM)
        deadline = time.monotonic() + grace
        while attempt.exit() is None and attempt.shim_alive() and time.monotonic() < deadline:
            await asyncio.sleep(0.1)
        self.runtime.signal(attempt, signal.SIGKILL)

    async def run(self) -> None:
        """Run the containers until they finish for good or the pod is stopped; then everything has exited."""
        try:
            self.cgroup_procs = self.cgroups.create(self.uid, pod_limits((self.pod.get("spec") or {}).get("containers")
                                                                         or []))
        except OSError as exc:
            self.event("Warning", "LimitsNotEnforced", f"pod cgroup could not be set up: {exc}")
        async with asyncio.TaskGroup() as group:
            runners = [group.create_task(r.run(), name=f"{self.key}/{r.name}") for r in self.runners]
            group.create_task(self._terminate_on_request(runners), name=f"{self.key}/terminate")
            if runners:
                await asyncio.wait(runners)
            await self._stop.wait()  # finished for good: keep the key until the pod is deleted
        self.cgroups.remove(self.uid)

    async def _terminate_on_request(self, runners: list[asyncio.Task[None]]) -> None:
        await self._stop.wait()
        grace = self._grace if self._grace is not None else self.grace_period()
        log.info("%s: stopping containers (grace %gs)", self.key, grace)
        await asyncio.gather(*(self.kill(a, grace) for a in self._current_attempts()))
        while not all(task.done() for task in runners):
            for attempt in self._current_attempts():
                self.runtime.signal(attempt, signal.SIGKILL)
            await asyncio.sleep(0.2)

    def _current_attempts(self) -> list[Attempt]:
        latest = [self.runtime.attempts(self.uid, r.name)[-1:] for r in self.runners]
        return [a[0] for a in latest if a and a[0].exit() is None]
