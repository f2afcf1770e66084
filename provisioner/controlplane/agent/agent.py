"""The agent process: Node heartbeat, one worker per bound pod, status writes, Events and the log endpoint.

Root tasks (one TaskGroup): the Node reporter, the pod informer (`spec.nodeName=<node>`), the status
writer, the Event recorder and the log server. Pod workers join the same group. When the API server
is unreachable only writes wait; running pods are untouched. A restarted agent adopts what runs.
"""

from __future__ import annotations

import asyncio
import logging
import signal
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp

from provisioner.controlplane.agent.cgroups import Cgroups, detect_cgroups
from provisioner.controlplane.agent.logs import LogServer
from provisioner.controlplane.agent.node import LOG_PORT, HostInfo, NodeReporter
from provisioner.controlplane.agent.runtime import Attempt, Runtime
from provisioner.controlplane.agent.worker import PodWorker, WorkerSettings
from provisioner.controlplane.client import ApiClient, ApiStatusError, EventRecorder, SharedInformer, resource

__all__ = ["Agent", "ServingCert"]

log = logging.getLogger(__name__)

PODS = resource("pods")
_API_ERRORS = (ApiStatusError, aiohttp.ClientError, OSError, TimeoutError)
_WRITE_CONCURRENCY = 16
_RETRY = 1.0


@dataclass(frozen=True)
class ServingCert:
    """The log endpoint's server certificate and the CA its clients' certificates must come from."""

    cert_file: Path
    key_file: Path
    client_ca_file: Path


class Agent:
    def __init__(
        self,
        client: ApiClient,
        *,
        settings: WorkerSettings,
        root: Path,
        serving: ServingCert | None,
        host: HostInfo | None = None,
        cgroups: Cgroups | None = None,
        labels: Mapping[str, str] | None = None,
        log_port: int = LOG_PORT,
        lease_interval: float = 10.0,
    ) -> None:
        self.client = client
        self.settings = settings
        self.runtime = Runtime(root)
        self.cgroups = cgroups or detect_cgroups()
        self.node = NodeReporter(client, settings.node_name, settings.address, host or HostInfo.detect(),
                                 labels=dict(labels or {}), lease_interval=lease_interval)
        self.node.extra_conditions.append(self._limits_condition())
        self.events = EventRecorder(client, component="agent", host=settings.node_name)
        self.pods = SharedInformer(client, PODS, field_selector=f"spec.nodeName={settings.node_name}")
        self.pods.add_handler(on_add=self._sync, on_update=lambda _old, new: self._sync(new),
                              on_delete=self._deleted)
        self.log_server = None if serving is None else LogServer(
            address=settings.address, port=log_port, cert_file=serving.cert_file, key_file=serving.key_file,
            ca_file=serving.client_ca_file, resolve=self._attempt_for_logs,
        )
        self.workers: dict[str, PodWorker] = {}
        self._group: asyncio.TaskGroup | None = None
        self._pending_status: dict[str, tuple[PodWorker, dict[str, Any]]] = {}
        self._written_status: dict[str, dict[str, Any]] = {}
        self._status_changed = asyncio.Event()
        self._event_queue: asyncio.Queue[tuple[Mapping[str, Any], str, str, str]] = asyncio.Queue()

    def _limits_condition(self) -> dict[str, Any]:
        if self.cgroups.problem:
            log.warning("%s", self.cgroups.problem)
            return {"type": "ResourceLimitsEnforced", "status": "False", "reason": "CgroupsUnavailable",
                    "message": self.cgroups.problem}
        return {"type": "ResourceLimitsEnforced", "status": "True", "reason": "CgroupsAvailable",
                "message": f"pod cpu and memory limits are enforced with {self.cgroups.name}"}

    # -- root ----------------------------------------------------------------------------------------
    async def run(self) -> None:
        async with asyncio.TaskGroup() as group:
            self._group = group
            group.create_task(self.node.run(), name="node")
            group.create_task(self.pods.run(), name="pod-informer")
            group.create_task(self._write_statuses(), name="pod-status")
            group.create_task(self._record_events(), name="events")
            if self.log_server is not None:
                group.create_task(self.log_server.run(), name="container-logs")
            if self.cgroups.problem:
                self._event_queue.put_nowait((self.node.node_object(), "Warning", "LimitsNotEnforced",
                                              self.cgroups.problem))
            await self.pods.has_synced.wait()
            known = {p["metadata"]["uid"] for p in self.pods.list()}
            for uid in self.runtime.pod_uids():
                if uid not in known and uid not in self.workers:
                    group.create_task(self._reap_orphan(uid), name=f"orphan:{uid}")

    # -- pods ----------------------------------------------------------------------------------------
    def _sync(self, pod: dict[str, Any]) -> None:
        meta = pod["metadata"]
        uid = meta["uid"]
        worker = self.workers.get(uid)
        deleting = bool(meta.get("deletionTimestamp"))
        if worker is None:
            ran_here = self.runtime.pod_dir(uid).exists()
            finished = (pod.get("status") or {}).get("phase") in ("Succeeded", "Failed")
            if not ran_here and (finished or deleting):
                if deleting:
                    self._spawn(self._delete_from_api(pod), f"delete:{uid}")
                return
            worker = PodWorker(pod, runtime=self.runtime, cgroups=self.cgroups, settings=self.settings,
                               on_status=self._status, on_event=self._event, on_image=self.node.add_image)
            self.workers[uid] = worker
            self._spawn(self._run_worker(worker), f"pod:{worker.key}")
        worker.update(pod)
        if deleting:
            worker.request_stop(grace=worker.grace_period(), delete_from_api=True)

    def _deleted(self, pod: dict[str, Any]) -> None:
        worker = self.workers.get(pod["metadata"]["uid"])
        if worker is not None:
            worker.update(pod)
            worker.request_stop(grace=worker.grace_period(), delete_from_api=False)

    def _spawn(self, coro: Any, name: str) -> None:
        if self._group is None:
            raise RuntimeError("agent is not running")
        self._group.create_task(coro, name=name)

    async def _run_worker(self, worker: PodWorker) -> None:
        try:
            await worker.run()
        except Exception:
            log.exception("%s: pod worker failed; it restarts (adopting its processes) on the next pod event",
                          worker.key)
            self.workers.pop(worker.uid, None)
            return
        self.workers.pop(worker.uid, None)
        self._pending_status.pop(worker.uid, None)
        self._written_status.pop(worker.uid, None)
        self.runtime.remove_pod(worker.uid)
        if worker.delete_from_api:
            await self._delete_from_api(worker.pod)

    async def _delete_from_api(self, pod: Mapping[str, Any]) -> None:
        """The containers are gone: remove the pod for good (grace 0, only this uid)."""
        meta = pod["metadata"]
        while True:
            try:
                await self.client.delete(PODS, meta["name"], namespace=meta.get("namespace"),
                                         grace_period_seconds=0, preconditions={"uid": meta["uid"]})
                return
            except ApiStatusError as exc:
                if exc.code in (404, 409):
                    return
                log.warning("%s/%s: final delete failed: %s", meta.get("namespace"), meta["name"], exc)
            except _API_ERRORS as exc:
                log.warning("%s/%s: final delete failed: %s", meta.get("namespace"), meta["name"], exc)
            await asyncio.sleep(_RETRY)

    async def _reap_orphan(self, uid: str) -> None:
        """Processes of a pod the API no longer has (deleted while this agent was down): stop and forget them."""
        log.info("pod %s is no longer bound here: stopping its containers", uid)
        latest = [a[-1] for d in self.runtime.pod_dir(uid).iterdir() if (a := self.runtime.attempts(uid, d.name))]
        for attempt in latest:
            self.runtime.signal(attempt, signal.SIGTERM)
        for _ in range(100):
            if all(not a.shim_alive() for a in latest):
                break
            await asyncio.sleep(0.1)
        for attempt in latest:
            self.runtime.signal(attempt, signal.SIGKILL)
        self.runtime.remove_pod(uid)
        self.cgroups.remove(uid)

    def _attempt_for_logs(self, namespace: str, name: str, container: str, previous: bool) -> Attempt | None:
        uid = next((w.uid for w in self.workers.values() if (w.namespace, w.name) == (namespace, name)), None)
        if uid is None:
            pod = self.pods.get(f"{namespace}/{name}")
            uid = pod["metadata"]["uid"] if pod else None
        attempts = self.runtime.attempts(uid, container) if uid else []
        wanted = attempts[-2:-1] if previous else attempts[-1:]
        return wanted[0] if wanted else None

    # -- writes ----------------------------------------------------------------------------------------
    def _status(self, worker: PodWorker, status: dict[str, Any]) -> None:
        self._pending_status[worker.uid] = (worker, status)
        self._status_changed.set()

    def _event(self, obj: Mapping[str, Any], type_: str, reason: str, message: str) -> None:
        self._event_queue.put_nowait((obj, type_, reason, message))

    async def _write_statuses(self) -> None:
        """Coalesced pod status writes: only the newest status of each pod, only when it changed."""
        limit = asyncio.Semaphore(_WRITE_CONCURRENCY)

        async def write(uid: str, worker: PodWorker, status: dict[str, Any]) -> bool:
            async with limit:
                try:
                    await self.client.patch(PODS, worker.name, {"status": status}, namespace=worker.namespace,
                                            subresource="status")
                    self._written_status[uid] = status
                    return True
                except _API_ERRORS as exc:
                    if isinstance(exc, ApiStatusError) and exc.not_found:
                        return True
                    log.warning("%s: status write failed: %s", worker.key, exc)
                    self._pending_status.setdefault(uid, (worker, status))  # unless a newer one arrived
                    self._status_changed.set()
                    return False

        while True:
            await self._status_changed.wait()
            self._status_changed.clear()
            batch, self._pending_status = self._pending_status, {}
            todo = [(uid, w, s) for uid, (w, s) in batch.items() if self._written_status.get(uid) != s]
            if not all(await asyncio.gather(*(write(*item) for item in todo))):
                await asyncio.sleep(_RETRY)

    async def _record_events(self) -> None:
        while True:
            obj, type_, reason, message = await self._event_queue.get()
            await self.events.record(obj, type_, reason, message)
