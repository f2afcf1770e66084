"""The controller manager on the real dev cluster, driven by the real kubectl.

Two controller-manager processes run for the whole module (started here, stopped by PID at the end);
one leads. There are no node agents in these tests: a small thread plays the agent's part by
writing pod status through the API (Running, an IP, the Ready condition), and node heartbeats are
Lease renewals written the same way.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from conftest import DevCluster, Kubectl
from kubernetes import client
from kubernetes.client.rest import ApiException

pytestmark = pytest.mark.integration

GRACE = 6  # --node-monitor-grace-period for these tests
TERMINATED_KEPT = 4  # --terminated-pod-gc-threshold for these tests
LEASE = ("kube-system", "kube-controller-manager")


def wait_for(predicate: Callable[[], Any], *, what: str, timeout: float = 60) -> Any:
    """Poll until `predicate()` is truthy; a bound on liveness, not a performance assertion."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.2)


def assert_settles(observe: Callable[[], Any], *, quiet: float = 3) -> None:
    """Once converged, a level-triggered loop stops writing: what `observe` returns stays the same."""
    before = observe()
    time.sleep(quiet)
    assert observe() == before, "the controllers keep rewriting an object that has converged"


def now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


# -- processes ---------------------------------------------------------------------------------------


@dataclass
class ControllerManager:
    identity: str
    process: subprocess.Popen[bytes]
    log: Path

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    def tail(self) -> str:
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-40:]) if self.log.exists() else ""


@dataclass
class Managers:
    cluster: DevCluster
    workdir: Path
    running: list[ControllerManager] = field(default_factory=list)

    def start(self, identity: str) -> ControllerManager:
        log = self.workdir / f"{identity}.log"
        argv = [
            sys.executable,
            "-m",
            "provisioner.controlplane.controllers",
            "--kubeconfig",
            str(self.cluster.kubeconfig),
            "--identity",
            identity,
            "--node-monitor-grace-period",
            str(GRACE),
            "--node-monitor-period",
            "1",
            "--pod-eviction-timeout",
            "3",
            "--pod-gc-period",
            "1",
            "--pod-gc-quarantine",
            "2",
            "--terminated-pod-gc-threshold",
            str(TERMINATED_KEPT),
            "--lease-duration",
            "4",
            "--renew-deadline",
            "3",
            "--retry-period",
            "1",
            "--check-cache-mutations",
        ]
        with log.open("wb") as out:
            process = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, env={**os.environ})
        manager = ControllerManager(identity, process, log)
        self.running.append(manager)
        return manager

    def by_identity(self, identity: str) -> ControllerManager:
        return next(m for m in self.running if m.identity == identity)


def lease_holder(api: client.ApiClient) -> str | None:
    try:
        return client.CoordinationV1Api(api).read_namespaced_lease(LEASE[1], LEASE[0]).spec.holder_identity
    except ApiException as exc:
        if exc.status == 404:
            return None
        raise


@pytest.fixture(scope="module")
def managers(
    dev_cluster: DevCluster, api: client.ApiClient, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Managers]:
    group = Managers(dev_cluster, tmp_path_factory.mktemp("controller-managers"))
    try:
        for identity in ("cm-a", "cm-b"):
            group.start(identity)
        wait_for(lambda: lease_holder(api) in ("cm-a", "cm-b"), what="a controller-manager to lead")
        yield group
        crashed = [m for m in group.running if m.process.poll() not in (None, 0, -signal.SIGKILL)]
        assert not crashed, "\n".join(f"{m.identity} exited {m.process.returncode}:\n{m.tail()}" for m in crashed)
    finally:
        for manager in group.running:
            manager.stop()


@pytest.fixture
def ns(api: client.ApiClient, managers: Managers) -> str:
    name = f"cm-{uuid.uuid4().hex[:6]}"
    client.CoreV1Api(api).create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=name)))
    return name


# -- a stand-in for the node agent -------------------------------------------------------------------


class FakeAgent:
    """Marks the pods of one namespace Running with an IP; Ready unless listed in `not_ready`."""

    def __init__(self, api: client.ApiClient, namespace: str) -> None:
        self.core = client.CoreV1Api(api)
        self.namespace = namespace
        self.not_ready: set[str] = set()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)
        self._ips: dict[str, str] = {}

    def __enter__(self) -> FakeAgent:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=10)

    def _loop(self) -> None:
        while not self._stop.wait(0.3):
            try:
                self.sync()
            except ApiException:
                continue

    def sync(self) -> None:
        for pod in self.core.list_namespaced_pod(self.namespace).items:
            if pod.metadata.deletion_timestamp:
                continue
            ready = "False" if pod.metadata.name in self.not_ready else "True"
            current = {c.type: c.status for c in (pod.status.conditions or [])} if pod.status else {}
            if pod.status and pod.status.phase == "Running" and current.get("Ready") == ready:
                continue
            ip = self._ips.setdefault(pod.metadata.name, f"10.244.0.{len(self._ips) + 2}")
            self.core.patch_namespaced_pod_status(
                pod.metadata.name,
                self.namespace,
                {
                    "status": {
                        "phase": "Running",
                        "podIP": ip,
                        "conditions": [
                            {"type": "Ready", "status": ready, "lastTransitionTime": now()},
                            {"type": "ContainersReady", "status": ready, "lastTransitionTime": now()},
                        ],
                    }
                },
            )


# -- manifests ---------------------------------------------------------------------------------------


def deployment(
    name: str,
    *,
    replicas: int = 3,
    image: str = "registry.local/web:1",
    strategy: str | None = None,
    rolling: dict[str, Any] | None = None,
) -> str:
    spec: dict[str, Any] = {
        "replicas": replicas,
        "selector": {"matchLabels": {"app": name}},
        "template": {
            "metadata": {"labels": {"app": name}},
            "spec": {
                "containers": [{"name": "web", "image": image, "ports": [{"name": "http", "containerPort": 8080}]}]
            },
        },
    }
    if strategy:
        spec["strategy"] = {"type": strategy}
    if rolling:
        spec["strategy"] = {"type": "RollingUpdate", "rollingUpdate": rolling}
    return json.dumps({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": name}, "spec": spec})


def pods_of(api: client.ApiClient, ns: str, *, app: str) -> list[client.V1Pod]:
    pods = client.CoreV1Api(api).list_namespaced_pod(ns, label_selector=f"app={app}").items
    return [p for p in pods if not p.metadata.deletion_timestamp]


def replica_sets(api: client.ApiClient, ns: str) -> dict[str, client.V1ReplicaSet]:
    return {rs.metadata.name: rs for rs in client.AppsV1Api(api).list_namespaced_replica_set(ns).items}


# -- tests -------------------------------------------------------------------------------------------


def test_deployment_of_three_replicas_becomes_available(api: client.ApiClient, kubectl: Kubectl, ns: str) -> None:
    kubectl("-n", ns, "apply", "-f", "-", stdin=deployment("web"), check=True)
    pods = wait_for(lambda: len(p := pods_of(api, ns, app="web")) == 3 and p, what="3 pods")
    owners = {ref.name for p in pods for ref in p.metadata.owner_references if ref.controller}
    assert len(owners) == 1 and next(iter(owners)).startswith("web-")
    rs = replica_sets(api, ns)[next(iter(owners))]
    assert rs.metadata.owner_references[0].kind == "Deployment"
    assert rs.metadata.annotations["deployment.kubernetes.io/revision"] == "1"
    assert rs.spec.selector.match_labels["pod-template-hash"] == rs.metadata.name.removeprefix("web-")
    with FakeAgent(api, ns):
        kubectl("-n", ns, "rollout", "status", "deployment/web", "--timeout=90s", check=True, timeout=120)
        kubectl("-n", ns, "wait", "--for=condition=Available", "deployment/web", "--timeout=60s", check=True)
        assert_settles(
            lambda: {
                o.metadata.name: o.metadata.resource_version
                for o in [client.AppsV1Api(api).read_namespaced_deployment("web", ns), *replica_sets(api, ns).values()]
            }
        )
    status = client.AppsV1Api(api).read_namespaced_deployment("web", ns).status
    assert (status.replicas, status.updated_replicas, status.ready_replicas, status.available_replicas) == (3, 3, 3, 3)
    progressing = next(c for c in status.conditions if c.type == "Progressing")
    assert progressing.reason == "NewReplicaSetAvailable"
    events = kubectl("-n", ns, "get", "events", "-o", "json", check=True)
    assert "ScalingReplicaSet" in events.stdout and "SuccessfulCreate" in events.stdout


def test_scale_up_and_down(api: client.ApiClient, kubectl: Kubectl, ns: str) -> None:
    kubectl("-n", ns, "apply", "-f", "-", stdin=deployment("web", replicas=2), check=True)
    with FakeAgent(api, ns):
        kubectl("-n", ns, "rollout", "status", "deployment/web", "--timeout=90s", check=True, timeout=120)
        kubectl("-n", ns, "scale", "deployment/web", "--replicas=5", check=True)
        wait_for(lambda: len(pods_of(api, ns, app="web")) == 5, what="5 pods")
        kubectl("-n", ns, "rollout", "status", "deployment/web", "--timeout=90s", check=True, timeout=120)
        kubectl("-n", ns, "scale", "deployment/web", "--replicas=1", check=True)
        wait_for(lambda: len(pods_of(api, ns, app="web")) == 1, what="1 pod")
        kubectl("-n", ns, "rollout", "status", "deployment/web", "--timeout=90s", check=True, timeout=120)
    status = client.AppsV1Api(api).read_namespaced_deployment("web", ns).status
    assert (status.replicas, status.available_replicas) == (1, 1)
    time.sleep(2)  # a stable count stays stable: no extra pods from a lagging cache
    assert len(pods_of(api, ns, app="web")) == 1


def test_rolling_update_and_rollout_undo(api: client.ApiClient, kubectl: Kubectl, ns: str) -> None:
    kubectl("-n", ns, "apply", "-f", "-", stdin=deployment("web"), check=True)
    with FakeAgent(api, ns):
        kubectl("-n", ns, "rollout", "status", "deployment/web", "--timeout=90s", check=True, timeout=120)
        (first,) = replica_sets(api, ns)
        kubectl("-n", ns, "set", "image", "deployment/web", "web=registry.local/web:2", check=True)
        kubectl("-n", ns, "rollout", "status", "deployment/web", "--timeout=90s", check=True, timeout=120)
        sets = replica_sets(api, ns)
        assert len(sets) == 2
        second = next(name for name in sets if name != first)
        assert sets[first].spec.replicas == 0 and sets[second].spec.replicas == 3
        assert sets[second].metadata.annotations["deployment.kubernetes.io/revision"] == "2"
        images = {p.spec.containers[0].image for p in pods_of(api, ns, app="web")}
        assert images == {"registry.local/web:2"}

        kubectl("-n", ns, "rollout", "undo", "deployment/web", check=True)
        kubectl("-n", ns, "rollout", "status", "deployment/web", "--timeout=90s", check=True, timeout=120)
    sets = replica_sets(api, ns)
    assert set(sets) == {first, second}, "undo reuses the old replica set"
    assert sets[first].spec.replicas == 3 and sets[second].spec.replicas == 0
    assert sets[first].metadata.annotations["deployment.kubernetes.io/revision"] == "3"
    images = {p.spec.containers[0].image for p in pods_of(api, ns, app="web")}
    assert images == {"registry.local/web:1"}
    history = kubectl("-n", ns, "rollout", "history", "deployment/web", check=True).stdout
    assert "2" in history and "3" in history


def test_old_replica_sets_beyond_the_history_limit_are_deleted(
    api: client.ApiClient, kubectl: Kubectl, ns: str
) -> None:
    manifest = json.loads(deployment("web", replicas=1))
    manifest["spec"]["revisionHistoryLimit"] = 1
    kubectl("-n", ns, "apply", "-f", "-", stdin=json.dumps(manifest), check=True)
    with FakeAgent(api, ns):
        for version in (2, 3, 4):
            kubectl("-n", ns, "set", "image", "deployment/web", f"web=registry.local/web:{version}", check=True)
            kubectl("-n", ns, "rollout", "status", "deployment/web", "--timeout=90s", check=True, timeout=120)
    sets = wait_for(lambda: len(s := replica_sets(api, ns)) == 2 and s, what="history trimmed to one old set")
    revisions = sorted(int(rs.metadata.annotations["deployment.kubernetes.io/revision"]) for rs in sets.values())
    assert revisions == [3, 4]


def test_recreate_replaces_all_pods_at_once(api: client.ApiClient, kubectl: Kubectl, ns: str) -> None:
    kubectl("-n", ns, "apply", "-f", "-", stdin=deployment("web", replicas=2, strategy="Recreate"), check=True)
    with FakeAgent(api, ns):
        kubectl("-n", ns, "rollout", "status", "deployment/web", "--timeout=90s", check=True, timeout=120)
        kubectl("-n", ns, "set", "image", "deployment/web", "web=registry.local/web:2", check=True)
        kubectl("-n", ns, "rollout", "status", "deployment/web", "--timeout=90s", check=True, timeout=120)
    images = {p.spec.containers[0].image for p in pods_of(api, ns, app="web")}
    assert images == {"registry.local/web:2"}
    assert sorted(rs.spec.replicas for rs in replica_sets(api, ns).values()) == [0, 2]


def test_stuck_rollout_exceeds_its_progress_deadline(api: client.ApiClient, kubectl: Kubectl, ns: str) -> None:
    manifest = json.loads(deployment("stuck", replicas=1))
    manifest["spec"]["progressDeadlineSeconds"] = 3  # no agent here: the pod never becomes ready
    kubectl("-n", ns, "apply", "-f", "-", stdin=json.dumps(manifest), check=True)

    def progressing() -> client.V1DeploymentCondition | None:
        conditions = client.AppsV1Api(api).read_namespaced_deployment("stuck", ns).status.conditions or []
        return next((c for c in conditions if c.type == "Progressing"), None)

    stuck = wait_for(
        lambda: (c := progressing()) and c.reason == "ProgressDeadlineExceeded" and c,
        what="the progress deadline to pass",
    )
    assert stuck.status == "False"
    result = kubectl("-n", ns, "rollout", "status", "deployment/stuck", "--timeout=30s", timeout=60)
    assert result.returncode != 0 and "exceeded its progress deadline" in result.stderr
    with FakeAgent(api, ns):
        wait_for(lambda: progressing().reason == "NewReplicaSetAvailable", what="the late rollout to complete")
    kubectl("-n", ns, "rollout", "status", "deployment/stuck", "--timeout=30s", check=True, timeout=60)


def _progressing(api: client.ApiClient, ns: str, name: str) -> client.V1DeploymentCondition | None:
    conditions = client.AppsV1Api(api).read_namespaced_deployment(name, ns).status.conditions or []
    return next((c for c in conditions if c.type == "Progressing"), None)


def _set_sizes(api: client.ApiClient, ns: str) -> dict[str, int]:
    return {name: rs.spec.replicas for name, rs in replica_sets(api, ns).items()}


def test_paused_deployment_scales_but_does_not_roll_out_until_resumed(
    api: client.ApiClient, kubectl: Kubectl, ns: str
) -> None:
    kubectl("-n", ns, "apply", "-f", "-", stdin=deployment("web"), check=True)
    with FakeAgent(api, ns):
        kubectl("-n", ns, "rollout", "status", "deployment/web", "--timeout=90s", check=True, timeout=120)
        (first,) = replica_sets(api, ns)
        kubectl("-n", ns, "rollout", "pause", "deployment/web", check=True)
        paused = wait_for(
            lambda: (c := _progressing(api, ns, "web")) and c.reason == "DeploymentPaused" and c,
            what="Progressing=DeploymentPaused",
        )
        assert (paused.status, paused.message) == ("Unknown", "Deployment is paused")
        for replicas in (5, 2):
            kubectl("-n", ns, "scale", "deployment/web", f"--replicas={replicas}", check=True)
            wait_for(lambda r=replicas: len(pods_of(api, ns, app="web")) == r, what=f"{replicas} pods while paused")
            assert _set_sizes(api, ns) == {first: replicas}
        status = kubectl("-n", ns, "rollout", "status", "deployment/web", "--timeout=30s", timeout=60)
        assert status.returncode == 0 and 'deployment "web" successfully rolled out' in status.stdout

        kubectl("-n", ns, "set", "image", "deployment/web", "web=registry.local/web:2", check=True)
        wait_for(
            lambda: (
                (d := client.AppsV1Api(api).read_namespaced_deployment("web", ns)).status.observed_generation
                == d.metadata.generation
            ),
            what="the template change to be observed",
        )
        time.sleep(3)  # several reconciles: a paused deployment must not start the rollout
        assert set(replica_sets(api, ns)) == {first}
        assert {p.spec.containers[0].image for p in pods_of(api, ns, app="web")} == {"registry.local/web:1"}
        waiting = kubectl("-n", ns, "rollout", "status", "deployment/web", "--timeout=3s", timeout=60)
        assert waiting.returncode != 0
        assert 'Waiting for deployment "web" rollout to finish: 0 out of 2 new replicas have been updated' in (
            waiting.stdout
        )

        kubectl("-n", ns, "rollout", "resume", "deployment/web", check=True)
        kubectl("-n", ns, "rollout", "status", "deployment/web", "--timeout=90s", check=True, timeout=120)
        sets = _set_sizes(api, ns)
        assert len(sets) == 2 and sets[first] == 0
    assert _progressing(api, ns, "web").reason == "NewReplicaSetAvailable"
    assert {p.spec.containers[0].image for p in pods_of(api, ns, app="web")} == {"registry.local/web:2"}


def test_paused_mid_rollout_scales_old_and_new_sets_proportionally(
    api: client.ApiClient, kubectl: Kubectl, ns: str
) -> None:
    manifest = deployment("web", replicas=4, rolling={"maxSurge": 1, "maxUnavailable": 0})
    kubectl("-n", ns, "apply", "-f", "-", stdin=manifest, check=True)
    with FakeAgent(api, ns):
        kubectl("-n", ns, "rollout", "status", "deployment/web", "--timeout=90s", check=True, timeout=120)
    (old,) = replica_sets(api, ns)
    # no agent now: the new set's surge pod never becomes ready, so the rollout stops at old 4 + new 1
    kubectl("-n", ns, "set", "image", "deployment/web", "web=registry.local/web:2", check=True)
    sizes = wait_for(lambda: len(s := _set_sizes(api, ns)) == 2 and s, what="the new set")
    new = next(name for name in sizes if name != old)
    assert sizes == {old: 4, new: 1}
    kubectl("-n", ns, "rollout", "pause", "deployment/web", check=True)
    kubectl("-n", ns, "scale", "deployment/web", "--replicas=8", check=True)
    # 8 + maxSurge 1 = 9 split 4:1, the remainder to the newer set
    wait_for(lambda: _set_sizes(api, ns) == {old: 7, new: 2}, what="proportional scaling of both sets")
    wait_for(lambda: len(pods_of(api, ns, app="web")) == 9, what="9 pods")
    with FakeAgent(api, ns):
        kubectl("-n", ns, "rollout", "resume", "deployment/web", check=True)
        kubectl("-n", ns, "rollout", "status", "deployment/web", "--timeout=120s", check=True, timeout=150)
    assert _set_sizes(api, ns) == {old: 0, new: 8}


def _bind(api: client.ApiClient, ns: str, pod: str, node: str) -> None:
    client.CoreV1Api(api).create_namespaced_pod_binding(
        pod,
        ns,
        client.V1Binding(
            metadata=client.V1ObjectMeta(name=pod),
            target=client.V1ObjectReference(api_version="v1", kind="Node", name=node),
        ),
        _preload_content=False,
    )


def _plain_pod(name: str) -> client.V1Pod:
    return client.V1Pod(
        metadata=client.V1ObjectMeta(name=name),
        spec=client.V1PodSpec(containers=[client.V1Container(name="c", image="img")]),
    )


def test_deleting_a_node_collects_its_pods_and_replicasets_replace_them(
    api: client.ApiClient, kubectl: Kubectl, ns: str, fake_node: FakeNode
) -> None:
    core = client.CoreV1Api(api)
    kubectl("-n", ns, "apply", "-f", "-", stdin=deployment("web", replicas=2), check=True)
    replicas = wait_for(lambda: len(p := pods_of(api, ns, app="web")) == 2 and p, what="2 pods")
    for name in ("single", "stuck"):
        core.create_namespaced_pod(ns, _plain_pod(name))
    doomed = {"single", "stuck", *(p.metadata.name for p in replicas)}
    for name in doomed:
        _bind(api, ns, name, fake_node.name)
    core.delete_namespaced_pod("stuck", ns)  # graceful: waits for an agent that will never come
    assert core.read_namespaced_pod("stuck", ns).metadata.deletion_timestamp
    time.sleep(4)  # a few GC passes past the quarantine: pods of a live node stay
    assert doomed <= {p.metadata.name for p in core.list_namespaced_pod(ns).items}

    kubectl("delete", "node", fake_node.name, check=True)
    wait_for(
        lambda: not doomed & {p.metadata.name for p in core.list_namespaced_pod(ns).items},
        what="the deleted node's pods to be collected",
        timeout=30,
    )
    replacements = wait_for(lambda: len(p := pods_of(api, ns, app="web")) == 2 and p, what="2 replacement pods")
    assert not {p.metadata.name for p in replacements} & doomed
    assert all(p.spec.node_name != fake_node.name for p in replacements)
    events = client.CoreV1Api(api).list_namespaced_event(ns).items
    collected = {e.involved_object.name: e.message for e in events if e.reason == "DeletionByPodGC"}
    assert set(collected) == doomed
    assert "stuck terminating" in collected["stuck"] and fake_node.name in collected["single"]


def test_terminated_pods_beyond_the_threshold_are_collected_oldest_first(api: client.ApiClient, ns: str) -> None:
    core = client.CoreV1Api(api)
    names = [f"done-{i}" for i in range(TERMINATED_KEPT + 2)]
    for i, name in enumerate(names):
        core.create_namespaced_pod(ns, _plain_pod(name))
        core.patch_namespaced_pod_status(name, ns, {"status": {"phase": "Succeeded" if i % 2 else "Failed"}})
    core.create_namespaced_pod(ns, _plain_pod("running"))

    def terminated() -> list[client.V1Pod]:
        return [
            p
            for p in core.list_pod_for_all_namespaces().items
            if p.status.phase in ("Succeeded", "Failed") and not p.metadata.deletion_timestamp
        ]

    wait_for(lambda: len(terminated()) == TERMINATED_KEPT, what="terminated pods down to the threshold", timeout=30)
    left = {p.metadata.name for p in core.list_namespaced_pod(ns).items}
    assert left == {*names[-TERMINATED_KEPT:], "running"}, "the oldest terminated pods go first"


def test_endpoints_follow_pod_readiness(api: client.ApiClient, kubectl: Kubectl, ns: str) -> None:
    kubectl("-n", ns, "apply", "-f", "-", stdin=deployment("web", replicas=2), check=True)
    service = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": "web"},
        "spec": {"selector": {"app": "web"}, "ports": [{"name": "http", "port": 80, "targetPort": "http"}]},
    }
    kubectl("-n", ns, "apply", "-f", "-", stdin=json.dumps(service), check=True)
    core = client.CoreV1Api(api)

    def addresses() -> tuple[set[str], set[str], set[int]]:
        try:
            subsets = core.read_namespaced_endpoints("web", ns).subsets or []
        except ApiException:
            return set(), set(), set()
        ready = {a.target_ref.name for s in subsets for a in s.addresses or []}
        not_ready = {a.target_ref.name for s in subsets for a in s.not_ready_addresses or []}
        return ready, not_ready, {p.port for s in subsets for p in s.ports or []}

    with FakeAgent(api, ns) as agent:
        pods = wait_for(lambda: len(p := pods_of(api, ns, app="web")) == 2 and p, what="2 pods")
        names = {p.metadata.name for p in pods}
        wait_for(lambda: addresses() == (names, set(), {8080}), what="both pods ready in the endpoints")
        sick = sorted(names)[0]
        agent.not_ready.add(sick)
        wait_for(lambda: addresses() == (names - {sick}, {sick}, {8080}), what="the not-ready pod to move")
        agent.not_ready.clear()
        wait_for(lambda: addresses() == (names, set(), {8080}), what="the pod to come back")
        assert_settles(lambda: core.read_namespaced_endpoints("web", ns).metadata.resource_version)
    ep = core.read_namespaced_endpoints("web", ns)
    address = ep.subsets[0].addresses[0]
    assert address.ip.startswith("10.244.0.") and address.target_ref.kind == "Pod"
    kubectl("-n", ns, "delete", "service", "web", check=True)
    wait_for(
        lambda: not [e for e in core.list_namespaced_endpoints(ns).items if e.metadata.name == "web"],
        what="endpoints to go with their service",
    )


def test_deleting_a_namespace_deletes_its_content_then_itself(api: client.ApiClient, kubectl: Kubectl, ns: str) -> None:
    kubectl("-n", ns, "apply", "-f", "-", stdin=deployment("web", replicas=2), check=True)
    kubectl("-n", ns, "create", "configmap", "settings", "--from-literal=a=b", check=True)
    wait_for(lambda: len(pods_of(api, ns, app="web")) == 2, what="2 pods")
    kubectl("delete", "namespace", ns, "--timeout=90s", check=True, timeout=120)
    core = client.CoreV1Api(api)
    assert ns not in {n.metadata.name for n in core.list_namespace().items}
    assert not core.list_namespaced_pod(ns).items
    assert not core.list_namespaced_config_map(ns).items
    assert not client.AppsV1Api(api).list_namespaced_deployment(ns).items


def _owned_configmaps(api: client.ApiClient, ns: str, owner: str, count: int) -> client.V1ConfigMap:
    core = client.CoreV1Api(api)
    parent = core.create_namespaced_config_map(ns, client.V1ConfigMap(metadata=client.V1ObjectMeta(name=owner)))
    ref = client.V1OwnerReference(
        api_version="v1", kind="ConfigMap", name=owner, uid=parent.metadata.uid, block_owner_deletion=True
    )
    for i in range(count):
        core.create_namespaced_config_map(
            ns, client.V1ConfigMap(metadata=client.V1ObjectMeta(name=f"{owner}-child-{i}", owner_references=[ref]))
        )
    return parent


def _configmaps(api: client.ApiClient, ns: str) -> dict[str, client.V1ConfigMap]:
    return {c.metadata.name: c for c in client.CoreV1Api(api).list_namespaced_config_map(ns).items}


def test_garbage_collector_background_deletes_dependents(api: client.ApiClient, kubectl: Kubectl, ns: str) -> None:
    _owned_configmaps(api, ns, "bg", 2)
    kubectl("-n", ns, "delete", "configmap", "bg", check=True)
    wait_for(lambda: not any(n.startswith("bg") for n in _configmaps(api, ns)), what="dependents to be collected")


def test_garbage_collector_foreground_deletes_dependents_before_owner(
    api: client.ApiClient, kubectl: Kubectl, ns: str
) -> None:
    kubectl("-n", ns, "apply", "-f", "-", stdin=deployment("web", replicas=2), check=True)
    wait_for(lambda: len(pods_of(api, ns, app="web")) == 2, what="2 pods")
    kubectl("-n", ns, "delete", "deployment", "web", "--cascade=foreground", "--timeout=60s", check=True, timeout=90)
    assert not client.AppsV1Api(api).list_namespaced_deployment(ns).items
    assert not replica_sets(api, ns)
    assert not client.CoreV1Api(api).list_namespaced_pod(ns).items


def test_garbage_collector_orphans_dependents_on_request(api: client.ApiClient, kubectl: Kubectl, ns: str) -> None:
    _owned_configmaps(api, ns, "keep", 2)
    kubectl("-n", ns, "delete", "configmap", "keep", "--cascade=orphan", "--timeout=60s", check=True, timeout=90)
    maps = wait_for(lambda: "keep" not in (m := _configmaps(api, ns)) and m, what="the owner to go")
    assert {"keep-child-0", "keep-child-1"} <= set(maps)
    assert all(not maps[n].metadata.owner_references for n in ("keep-child-0", "keep-child-1"))


def test_replicaset_adopts_orphans_and_releases_pods_that_stop_matching(
    api: client.ApiClient, kubectl: Kubectl, ns: str
) -> None:
    core = client.CoreV1Api(api)
    orphan = client.V1Pod(
        metadata=client.V1ObjectMeta(name="orphan", labels={"app": "rs"}),
        spec=client.V1PodSpec(containers=[client.V1Container(name="c", image="img")]),
    )
    core.create_namespaced_pod(ns, orphan)
    rs = {
        "apiVersion": "apps/v1",
        "kind": "ReplicaSet",
        "metadata": {"name": "rs"},
        "spec": {
            "replicas": 2,
            "selector": {"matchLabels": {"app": "rs"}},
            "template": {
                "metadata": {"labels": {"app": "rs"}},
                "spec": {"containers": [{"name": "c", "image": "img"}]},
            },
        },
    }
    kubectl("-n", ns, "apply", "-f", "-", stdin=json.dumps(rs), check=True)
    wait_for(lambda: len(pods_of(api, ns, app="rs")) == 2, what="2 pods")
    adopted = wait_for(
        lambda: (p := core.read_namespaced_pod("orphan", ns)).metadata.owner_references and p,
        what="the orphan to be adopted",
    )
    assert adopted.metadata.owner_references[0].name == "rs" and adopted.metadata.owner_references[0].controller
    kubectl("-n", ns, "label", "pod", "orphan", "app=other", "--overwrite", check=True)
    wait_for(
        lambda: not core.read_namespaced_pod("orphan", ns).metadata.owner_references,
        what="the relabelled pod to be released",
    )
    wait_for(lambda: len(pods_of(api, ns, app="rs")) == 2, what="a replacement pod")
    status = wait_for(
        lambda: (s := client.AppsV1Api(api).read_namespaced_replica_set("rs", ns).status) and s.replicas == 2 and s,
        what="replicaset status",
    )
    assert status.fully_labeled_replicas == 2 and status.observed_generation == 1


class FakeNode:
    """A Node whose heartbeat Lease in kube-node-lease is renewed every second until `stop()`."""

    def __init__(self, api: client.ApiClient, name: str) -> None:
        self.core = client.CoreV1Api(api)
        self.coordination = client.CoordinationV1Api(api)
        self.name = name
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def register(self) -> None:
        self.core.create_node(client.V1Node(metadata=client.V1ObjectMeta(name=self.name)))
        self.core.patch_node_status(
            self.name,
            {
                "status": {
                    "conditions": [
                        {
                            "type": "Ready",
                            "status": "True",
                            "reason": "KubeletReady",
                            "lastHeartbeatTime": now(),
                            "lastTransitionTime": now(),
                        }
                    ]
                }
            },
        )
        self.coordination.create_namespaced_lease(
            "kube-node-lease",
            client.V1Lease(
                metadata=client.V1ObjectMeta(name=self.name),
                spec=client.V1LeaseSpec(holder_identity=self.name, lease_duration_seconds=40),
            ),
        )
        self.start()

    def start(self) -> None:
        self._stop.clear()
        self._thread = threading.Thread(target=self._renew, daemon=True)
        self._thread.start()

    def _renew(self) -> None:
        while not self._stop.wait(1):
            stamp = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
            try:
                self.coordination.patch_namespaced_lease(self.name, "kube-node-lease", {"spec": {"renewTime": stamp}})
            except ApiException:
                continue

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)

    def delete(self) -> None:
        self.stop()
        for call in (
            lambda: self.coordination.delete_namespaced_lease(self.name, "kube-node-lease"),
            lambda: self.core.delete_node(self.name),
        ):
            with contextlib.suppress(ApiException):
                call()


@pytest.fixture
def fake_node(api: client.ApiClient, managers: Managers) -> Iterator[FakeNode]:
    node = FakeNode(api, f"node-{uuid.uuid4().hex[:6]}")
    try:
        node.register()
        yield node
    finally:
        node.delete()


def _taints(api: client.ApiClient, node: str) -> set[tuple[str, str]]:
    spec = client.CoreV1Api(api).read_node(node).spec
    return {(t.key, t.effect) for t in (spec.taints if spec else None) or []}


def test_silent_node_is_tainted_and_its_pods_evicted_then_untainted(
    api: client.ApiClient, kubectl: Kubectl, ns: str, fake_node: FakeNode
) -> None:
    core = client.CoreV1Api(api)
    unreachable = "node.kubernetes.io/unreachable"
    tolerations = {
        "patient": [client.V1Toleration(key=unreachable, operator="Exists", effect="NoExecute")],
        "impatient": [
            client.V1Toleration(key=unreachable, operator="Exists", effect="NoExecute", toleration_seconds=1)
        ],
        "default": None,  # gets --pod-eviction-timeout (3 s here)
    }
    for name, toleration in tolerations.items():
        core.create_namespaced_pod(
            ns,
            client.V1Pod(
                metadata=client.V1ObjectMeta(name=name),
                spec=client.V1PodSpec(containers=[client.V1Container(name="c", image="img")], tolerations=toleration),
            ),
        )
    replicated = json.dumps(
        {
            "apiVersion": "apps/v1",
            "kind": "ReplicaSet",
            "metadata": {"name": "replicated"},
            "spec": {
                "replicas": 1,
                "selector": {"matchLabels": {"app": "replicated"}},
                "template": {
                    "metadata": {"labels": {"app": "replicated"}},
                    "spec": {"containers": [{"name": "c", "image": "img"}]},
                },
            },
        }
    )
    kubectl("-n", ns, "apply", "-f", "-", stdin=replicated, check=True)
    (first_replica,) = wait_for(lambda: pods_of(api, ns, app="replicated"), what="the replicaset's pod")
    for name in [*tolerations, first_replica.metadata.name]:
        core.create_namespaced_pod_binding(
            name,
            ns,
            client.V1Binding(
                metadata=client.V1ObjectMeta(name=name),
                target=client.V1ObjectReference(api_version="v1", kind="Node", name=fake_node.name),
            ),
            _preload_content=False,
        )
    time.sleep(GRACE + 2)
    assert (unreachable, "NoExecute") not in _taints(api, fake_node.name), "a renewing node is healthy"

    fake_node.stop()
    wait_for(
        lambda: {(unreachable, "NoExecute"), (unreachable, "NoSchedule")} <= _taints(api, fake_node.name),
        what="the unreachable taints",
        timeout=GRACE + 30,
    )
    ready = next(c for c in core.read_node(fake_node.name).status.conditions if c.type == "Ready")
    assert ready.status == "Unknown"

    def evicted() -> set[str]:
        return {p.metadata.name for p in core.list_namespaced_pod(ns).items if p.metadata.deletion_timestamp}

    wait_for(
        lambda: evicted() == {"impatient", "default", first_replica.metadata.name},
        what="pods without lasting toleration to be evicted",
    )
    replacement = wait_for(lambda: pods_of(api, ns, app="replicated"), what="a replacement for the evicted replica")
    assert [p.metadata.name for p in replacement] != [first_replica.metadata.name]
    time.sleep(2)
    assert "patient" not in evicted()

    fake_node.start()
    wait_for(
        lambda: not {t for t in _taints(api, fake_node.name) if t[0] == unreachable},
        what="the taint to go when heartbeats return",
        timeout=30,
    )


def test_loops_keep_working_when_api_servers_restart(
    api: client.ApiClient, kubectl: Kubectl, ns: str, dev_cluster: DevCluster
) -> None:
    kubectl("-n", ns, "apply", "-f", "-", stdin=deployment("sturdy", replicas=1), check=True)
    wait_for(lambda: len(pods_of(api, ns, app="sturdy")) == 1, what="1 pod")
    try:
        for replicas, server in enumerate(("apiserver-0", "apiserver-1", "apiserver-2"), start=2):
            dev_cluster.kill(server)  # every watch through it breaks; informers re-list through the others
            kubectl("-n", ns, "scale", "deployment/sturdy", f"--replicas={replicas}", check=True)
            wait_for(lambda r=replicas: len(pods_of(api, ns, app="sturdy")) == r, what=f"{replicas} pods")
            dev_cluster.restart()
    finally:
        dev_cluster.restart()


def test_leadership_moves_when_the_leader_is_killed(
    api: client.ApiClient, kubectl: Kubectl, ns: str, managers: Managers
) -> None:
    leader = wait_for(lambda: lease_holder(api), what="a leader")
    victim = managers.by_identity(leader)
    os.kill(victim.process.pid, signal.SIGKILL)
    victim.process.wait(timeout=10)
    successor = wait_for(
        lambda: (h := lease_holder(api)) not in (None, "", leader) and h,
        what="another controller-manager to take the lease",
    )
    assert successor in ("cm-a", "cm-b") and successor != leader
    kubectl("-n", ns, "apply", "-f", "-", stdin=deployment("after", replicas=2), check=True)
    wait_for(lambda: len(pods_of(api, ns, app="after")) == 2, what="the new leader to act")
    managers.start(f"{leader}-restarted")
