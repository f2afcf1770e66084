"""The scheduler and two agents on the real dev cluster, driven with the real kubectl.

Module fixture `nodes`: one scheduler, one controller-manager and two agents (node-a, node-b on their
own loopback addresses in the cluster's block), started as real processes, each with its own identity
(system:kube-scheduler, system:kube-controller-manager, system:node:<node>) so the bootstrap RBAC is what
they run on, and stopped, with every container they ran, at the end even on failure. Like systemd units
they are restarted when they exit (a controller-manager that loses its Lease in an outage exits). The
scheduler has a name of its own, set on every pod here, so pods other modules left Pending on the shared
cluster never land on these nodes and skew their load.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import ssl
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import aiohttp
import pytest
import yaml

from provisioner.controlplane.agent.cgroups import detect_cgroups
from provisioner.controlplane.agent.runtime import Runtime, reap
from provisioner.kubeconfig import write_kubeconfig
from provisioner.pki import CertificateAuthority, IssuedCert

pytestmark = pytest.mark.integration

WAIT = 90.0
SCHEDULER_NAME = f"it-scheduler-{uuid.uuid4().hex[:6]}"


@dataclass
class Proc:
    name: str
    argv: list[str]
    log_file: Path
    popen: subprocess.Popen[bytes] | None = None
    wanted: bool = False  # started and not deliberately stopped: `revive` restarts it when it exits
    lock: threading.Lock = field(default_factory=threading.Lock)

    def start(self) -> None:
        with self.lock:
            self.wanted = True
            self._spawn()

    def revive(self) -> None:
        """Restart the process if it exited on its own, as systemd's Restart=always does."""
        with self.lock:
            if self.wanted and self.popen is not None and self.popen.poll() is not None:
                self._spawn()

    def stop(self, sig: signal.Signals = signal.SIGTERM) -> None:
        with self.lock:
            self.wanted = False
            if self.popen is None or self.popen.poll() is not None:
                return
            self.popen.send_signal(sig)
            try:
                self.popen.wait(15)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait(5)

    def _spawn(self) -> None:
        with self.log_file.open("ab") as log:
            self.popen = subprocess.Popen(self.argv, stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                                          start_new_session=True)


@dataclass
class Nodes:
    kubectl: Any
    procs: dict[str, Proc]
    roots: dict[str, Path]
    addresses: dict[str, str]

    def json(self, *args: str) -> Any:
        return json.loads(self.kubectl(*args, "-o", "json", check=True).stdout)

    def apply(self, manifest: dict[str, Any]) -> None:
        self.kubectl("apply", "-f", "-", stdin=yaml.safe_dump(manifest), check=True)

    def pod(self, namespace: str, name: str) -> dict[str, Any]:
        return self.json("get", "pod", name, "-n", namespace)  # type: ignore[no-any-return]

    def until(self, predicate: Callable[[], Any], what: str, timeout: float = WAIT) -> Any:
        deadline = time.monotonic() + timeout
        last: Any = None
        while time.monotonic() < deadline:
            try:
                last = predicate()
            except (AssertionError, KeyError, StopIteration, IndexError):
                last = None
            if last:
                return last
            time.sleep(0.5)
        raise AssertionError(f"timed out waiting for {what}")


def _pod(name: str, *, command: list[str] | None = None, **spec: Any) -> dict[str, Any]:
    container = {"name": "main", "image": "busybox", "command": command or ["sleep", "3600"],
                 **spec.pop("container", {})}
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "labels": spec.pop("labels", {})},
            "spec": {"schedulerName": SCHEDULER_NAME, "terminationGracePeriodSeconds": 2, "containers": [container],
                     **spec}}


@pytest.fixture(scope="module")
def nodes(dev_cluster: Any, kubectl: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Nodes]:
    work = tmp_path_factory.mktemp("nodes")
    block = urlparse(dev_cluster.server).hostname.split(".")[1]  # type: ignore[union-attr]
    ca = CertificateAuthority.load_or_create(dev_cluster.ca_file.parent)
    python = sys.executable

    def identity(name: str, user: str, *, groups: tuple[str, ...] = (), hosts: tuple[str, ...] = ()
                 ) -> tuple[str, IssuedCert]:
        """A kubeconfig for `user` and its certificate (also the agents' serving certificate, hence `hosts`)."""
        cert = ca.issue(f"it-{name}", common_name=user, organizations=groups, hosts=hosts, server=bool(hosts),
                        client=True)
        path = write_kubeconfig(work / f"{name}.kubeconfig", cluster_name=dev_cluster.name, server=dev_cluster.server,
                                ca_file=dev_cluster.ca_file, cert_file=cert.cert_file, key_file=cert.key_file,
                                user=user)
        return str(path), cert

    procs = {
        "scheduler": Proc("scheduler", [python, "-m", "provisioner.controlplane.scheduler", "--kubeconfig",
                                        identity("scheduler", "system:kube-scheduler")[0],
                                        "--scheduler-name", SCHEDULER_NAME, "--identity", "it-scheduler-0"],
                          work / "scheduler.log"),
        "controllers": Proc("controllers", [python, "-m", "provisioner.controlplane.controllers", "--kubeconfig",
                                            identity("controllers", "system:kube-controller-manager")[0],
                                            "--identity", "it-cm-0", "--node-monitor-grace-period", "12",
                                            "--pod-eviction-timeout", "5"], work / "controllers.log"),
    }
    roots, addresses = {}, {}
    for i, node in enumerate(("node-a", "node-b")):
        address = f"127.{block}.2.{101 + i}"
        config, cert = identity(node, f"system:node:{node}", groups=("system:nodes",), hosts=(address,))
        roots[node], addresses[node] = work / node, address
        # Heartbeats every 2 s: the 12 s grace period above then spans six of them (Kubernetes: 40 s over 10 s),
        # so a live agent on a loaded host is never declared unreachable and its pods evicted.
        procs[node] = Proc(node, [python, "-m", "provisioner.controlplane.agent", "--kubeconfig", config,
                                  "--node-name", node, "--address", address, "--root", str(work / node),
                                  "--tls-cert-file", str(cert.cert_file), "--tls-key-file", str(cert.key_file),
                                  "--backoff-base", "1", "--lease-interval", "2"], work / f"{node}.log")
    result = Nodes(kubectl, procs, roots, addresses)
    stopping = threading.Event()

    def supervise() -> None:
        while not stopping.wait(1.0):
            for proc in procs.values():
                proc.revive()

    supervisor = threading.Thread(target=supervise, name="supervisor", daemon=True)
    try:
        for proc in procs.values():
            proc.start()
        supervisor.start()
        # Name the nodes: other modules on the shared cluster may leave Node objects of their own behind.
        result.until(lambda: {n["metadata"]["name"] for n in result.json("get", "nodes")["items"]
                              if _ready(n) and not n["spec"].get("taints")} >= set(addresses),
                     "node-a and node-b Ready and untainted")
        yield result
    finally:
        stopping.set()
        if supervisor.is_alive():
            supervisor.join()
        for proc in procs.values():
            proc.stop()
        for node, root in roots.items():
            _kill_leftovers(root)
            kubectl("delete", "node", node, "--wait=false")
        for proc in procs.values():
            print(f"--- {proc.name} log (tail) ---\n" + "\n".join(proc.log_file.read_text().splitlines()[-40:]))


def _ready(node: dict[str, Any]) -> bool:
    return any(c["type"] == "Ready" and c["status"] == "True" for c in node["status"].get("conditions") or [])


def _kill_leftovers(root: Path) -> None:
    """Containers the agents did not stop (pods still bound at the end): kill them and drop their cgroups."""
    if root.exists():
        reap(root, cgroups=detect_cgroups())


@pytest.fixture
def ns(nodes: Nodes) -> Iterator[str]:
    name = f"sched-it-{uuid.uuid4().hex[:6]}"
    nodes.kubectl("create", "namespace", name, check=True)
    yield name
    nodes.kubectl("delete", "pods", "--all", "-n", name, "--grace-period=1", "--timeout=60s")
    nodes.kubectl("delete", "namespace", name, "--wait=false")


def _running(nodes: Nodes, namespace: str, name: str) -> dict[str, Any] | None:
    pod = nodes.pod(namespace, name)
    return pod if pod["status"].get("phase") == "Running" else None


def _pending_message(nodes: Nodes, namespace: str, name: str) -> str | None:
    pod = nodes.pod(namespace, name)
    condition = next(c for c in pod["status"].get("conditions") or [] if c["type"] == "PodScheduled")
    return condition["message"] if condition["status"] == "False" else None


def test_pods_are_scheduled_across_both_nodes_and_run(nodes: Nodes, ns: str) -> None:
    for i in range(4):
        nodes.kubectl("apply", "-n", ns, "-f", "-", stdin=yaml.safe_dump(_pod(f"p{i}", labels={"app": "spread"})),
                      check=True)
    pods = [nodes.until(lambda i=i: _running(nodes, ns, f"p{i}"), f"p{i} Running") for i in range(4)]
    assert {p["spec"]["nodeName"] for p in pods} == {"node-a", "node-b"}
    for pod in pods:
        assert pod["status"]["podIP"] == nodes.addresses[pod["spec"]["nodeName"]]
        statuses = pod["status"]["containerStatuses"]
        assert statuses[0]["ready"] is True and statuses[0]["image"] == "busybox"
    node = nodes.json("get", "node", "node-a")
    assert node["status"]["nodeInfo"]["kubeletVersion"]
    assert int(node["status"]["capacity"]["pods"]) == 110


@pytest.mark.parametrize(
    ("spec", "reason"),
    [
        pytest.param({"nodeSelector": {"disk": "ssd"}},
                     "0/2 nodes are available: 2 node(s) didn't match Pod's node affinity/selector.",
                     id="node-selector"),
        pytest.param({"container": {"resources": {"requests": {"cpu": "1000"}}}},
                     "0/2 nodes are available: 2 Insufficient cpu.", id="insufficient-cpu"),
    ],
)
def test_pod_that_fits_nowhere_stays_pending_with_the_reason(nodes: Nodes, ns: str, spec: dict[str, Any],
                                                             reason: str) -> None:
    nodes.kubectl("apply", "-n", ns, "-f", "-", stdin=yaml.safe_dump(_pod("stuck", **spec)), check=True)
    assert nodes.until(lambda: _pending_message(nodes, ns, "stuck"), "PodScheduled=False") == reason
    assert nodes.pod(ns, "stuck")["status"]["phase"] == "Pending"
    events = nodes.json("get", "events", "-n", ns)["items"]
    assert any(e["reason"] == "FailedScheduling" and e["message"] == reason for e in events)


def test_taint_blocks_a_node_and_removing_it_retries_the_pod(nodes: Nodes, ns: str) -> None:
    nodes.kubectl("taint", "nodes", "node-a", "node-b", "dedicated=db:NoSchedule", check=True)
    try:
        nodes.kubectl("apply", "-n", ns, "-f", "-", stdin=yaml.safe_dump(_pod("tainted")), check=True)
        message = nodes.until(lambda: _pending_message(nodes, ns, "tainted"), "PodScheduled=False")
        assert message == "0/2 nodes are available: 2 node(s) had untolerated taint {dedicated: db}."
    finally:
        nodes.kubectl("taint", "nodes", "node-a", "node-b", "dedicated=db:NoSchedule-", check=True)
    nodes.until(lambda: _running(nodes, ns, "tainted"), "Running once the taint is gone")


def test_anti_affinity_and_host_ports_leave_the_third_pod_pending(nodes: Nodes, ns: str) -> None:
    anti = {"podAntiAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": [
        {"labelSelector": {"matchLabels": {"app": "solo"}}, "topologyKey": "kubernetes.io/hostname"}]}}
    for i in range(3):
        nodes.apply({**_pod(f"solo{i}", labels={"app": "solo"}, affinity=anti), "metadata": {
            "name": f"solo{i}", "namespace": ns, "labels": {"app": "solo"}}})
    for i in range(2):
        nodes.until(lambda i=i: _running(nodes, ns, f"solo{i}"), f"solo{i} Running")
    assert nodes.until(lambda: _pending_message(nodes, ns, "solo2"), "solo2 pending") == (
        "0/2 nodes are available: 2 node(s) didn't satisfy existing pods anti-affinity rules.")
    port = {"ports": [{"containerPort": 18080, "hostPort": 18080}]}
    for i in range(3):
        nodes.apply({**_pod(f"port{i}", container=port), "metadata": {"name": f"port{i}", "namespace": ns}})
    for i in range(2):
        nodes.until(lambda i=i: _running(nodes, ns, f"port{i}"), f"port{i} Running")
    assert nodes.until(lambda: _pending_message(nodes, ns, "port2"), "port2 pending") == (
        "0/2 nodes are available: 2 node(s) didn't have free ports for the requested pod ports.")


def test_kubectl_logs_reads_the_container_output(nodes: Nodes, ns: str) -> None:
    script = "for i in 1 2 3; do echo line $i; done; sleep 3600"
    nodes.kubectl("apply", "-n", ns, "-f", "-", stdin=yaml.safe_dump(_pod("talker", command=["sh", "-c", script])),
                  check=True)
    nodes.until(lambda: _running(nodes, ns, "talker"), "talker Running")
    logs = nodes.until(lambda: nodes.kubectl("logs", "-n", ns, "talker").stdout.count("line") == 3 and
                       nodes.kubectl("logs", "-n", ns, "talker").stdout, "three lines")
    assert logs == "line 1\nline 2\nline 3\n"
    assert nodes.kubectl("logs", "-n", ns, "talker", "--tail=1", check=True).stdout == "line 3\n"


def test_agent_log_endpoint_refuses_clients_without_a_cluster_certificate(nodes: Nodes, dev_cluster: Any) -> None:
    """Only the API server (with its kubelet client certificate) reads logs straight from an agent."""
    context = ssl.create_default_context(cafile=str(dev_cluster.ca_file))
    context.check_hostname = False
    url = f"https://{nodes.addresses['node-a']}:10250/containerLogs/default/any/main"

    async def anonymous_get() -> None:
        async with aiohttp.ClientSession() as session, session.get(url, ssl=context) as resp:
            await resp.text()

    with pytest.raises(aiohttp.ClientError):
        asyncio.run(anonymous_get())
    context.load_cert_chain(str(dev_cluster.admin_cert), str(dev_cluster.admin_key))

    async def status_with_certificate() -> int:
        async with aiohttp.ClientSession() as session, session.get(url, ssl=context) as resp:
            return resp.status

    assert asyncio.run(status_with_certificate()) == 404  # the handshake passes; the pod is just unknown


def test_kubectl_logs_follow_streams_until_the_container_ends(nodes: Nodes, ns: str) -> None:
    script = "echo first; sleep 3; echo second"
    nodes.kubectl("apply", "-n", ns, "-f", "-", stdin=yaml.safe_dump(
        _pod("streamer", command=["sh", "-c", script], restartPolicy="Never")), check=True)
    nodes.until(lambda: nodes.pod(ns, "streamer")["status"].get("containerStatuses"), "container started")
    followed = nodes.kubectl("logs", "-f", "-n", ns, "streamer", check=True, timeout=60)
    assert followed.stdout == "first\nsecond\n"
    nodes.until(lambda: nodes.pod(ns, "streamer")["status"]["phase"] == "Succeeded", "Succeeded")


def test_deleted_pod_is_terminated_gracefully_and_removed(nodes: Nodes, ns: str) -> None:
    nodes.kubectl("apply", "-n", ns, "-f", "-", stdin=yaml.safe_dump(_pod("doomed")), check=True)
    pod = nodes.until(lambda: _running(nodes, ns, "doomed"), "doomed Running")
    root = nodes.roots[pod["spec"]["nodeName"]]
    attempt = Runtime(root).attempts(pod["metadata"]["uid"], "main")[-1]
    pid = attempt.process()["pid"]  # type: ignore[index]
    nodes.kubectl("delete", "pod", "doomed", "-n", ns, "--timeout=60s", check=True)
    assert nodes.kubectl("get", "pod", "doomed", "-n", ns).returncode != 0
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)


def test_restarted_agent_adopts_its_running_pods(nodes: Nodes, ns: str) -> None:
    nodes.apply({**_pod("kept", nodeSelector={"kubernetes.io/hostname": "node-b"}),
                 "metadata": {"name": "kept", "namespace": ns}})
    pod = nodes.until(lambda: _running(nodes, ns, "kept"), "kept Running")
    runtime = Runtime(nodes.roots["node-b"])
    attempt = runtime.attempts(pod["metadata"]["uid"], "main")[-1]
    pid = attempt.process()["pid"]  # type: ignore[index]
    nodes.procs["node-b"].stop(signal.SIGKILL)
    os.kill(pid, 0)  # the container outlives its agent
    nodes.procs["node-b"].start()
    time.sleep(5)
    pod = nodes.until(lambda: _running(nodes, ns, "kept"), "kept Running after the agent restart")
    assert len(runtime.attempts(pod["metadata"]["uid"], "main")) == 1
    assert pod["status"]["containerStatuses"][0]["restartCount"] == 0
    os.kill(pid, 0)


def test_pods_keep_running_and_restarting_while_the_api_is_unreachable(nodes: Nodes, ns: str, dev_cluster: Any) -> None:
    script = "sleep 4; exit 1"  # crashes every few seconds: restarts must go on without the API
    nodes.kubectl("apply", "-n", ns, "-f", "-", stdin=yaml.safe_dump(_pod("steady")), check=True)
    nodes.kubectl("apply", "-n", ns, "-f", "-", stdin=yaml.safe_dump(
        _pod("crashy", command=["sh", "-c", script], nodeSelector={"kubernetes.io/hostname": "node-a"})),
        check=True)
    steady = nodes.until(lambda: _running(nodes, ns, "steady"), "steady Running")
    crashy = nodes.until(lambda: _running(nodes, ns, "crashy"), "crashy Running")
    runtime = Runtime(nodes.roots[steady["spec"]["nodeName"]])
    pid = runtime.attempts(steady["metadata"]["uid"], "main")[-1].process()["pid"]  # type: ignore[index]
    crashy_runtime = Runtime(nodes.roots["node-a"])
    before = len(crashy_runtime.attempts(crashy["metadata"]["uid"], "main"))
    dev_cluster.kill("haproxy")  # the agents' only way to the API servers
    try:
        time.sleep(6)  # shorter than the node grace period, so the nodes stay Ready
        os.kill(pid, 0)
        assert len(crashy_runtime.attempts(crashy["metadata"]["uid"], "main")) > before
    finally:
        dev_cluster.restart()
    restarts = nodes.until(lambda: nodes.pod(ns, "crashy")["status"]["containerStatuses"][0]["restartCount"] >= before
                           and nodes.pod(ns, "crashy")["status"]["containerStatuses"][0]["restartCount"],
                           "restart count reported after the outage")
    assert restarts >= before
    assert _running(nodes, ns, "steady")["status"]["containerStatuses"][0]["restartCount"] == 0  # type: ignore[index]


def test_scheduler_leadership_moves_to_a_standby(nodes: Nodes, ns: str) -> None:
    standby = Proc("scheduler-standby", [*nodes.procs["scheduler"].argv[:-1], "it-scheduler-1"],
                   nodes.procs["scheduler"].log_file.with_name("scheduler-standby.log"))
    standby.start()
    try:
        def holder() -> str:
            return str(nodes.json("get", "lease", "kube-scheduler", "-n", "kube-system")["spec"]["holderIdentity"])

        assert nodes.until(holder, "a scheduler lease holder") == "it-scheduler-0"
        nodes.procs["scheduler"].stop(signal.SIGKILL)
        nodes.until(lambda: holder() == "it-scheduler-1", "the standby taking over", timeout=40)
        nodes.kubectl("apply", "-n", ns, "-f", "-", stdin=yaml.safe_dump(_pod("after-failover")), check=True)
        nodes.until(lambda: _running(nodes, ns, "after-failover"), "pod scheduled by the new leader")
    finally:
        nodes.procs["scheduler"].start()
        standby.stop()


def test_deployment_pods_move_off_a_node_whose_agent_died(nodes: Nodes, ns: str) -> None:
    deployment = {
        "apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "mover", "namespace": ns},
        "spec": {"replicas": 3, "selector": {"matchLabels": {"app": "mover"}}, "template": {
            "metadata": {"labels": {"app": "mover"}},
            "spec": {"schedulerName": SCHEDULER_NAME, "terminationGracePeriodSeconds": 1,
                     "containers": [{"name": "main", "image": "busybox", "command": ["sleep", "3600"]}]}}},
    }
    nodes.apply(deployment)

    def running_pods() -> list[dict[str, Any]]:
        items = nodes.json("get", "pods", "-n", ns, "-l", "app=mover")["items"]
        return [p for p in items
                if p["status"].get("phase") == "Running" and not p["metadata"].get("deletionTimestamp")]

    nodes.until(lambda: len(running_pods()) == 3, "three replicas Running")
    nodes.procs["node-a"].stop(signal.SIGKILL)
    try:
        nodes.until(lambda: not _ready(nodes.json("get", "node", "node-a")), "node-a NotReady", timeout=120)
        nodes.until(lambda: len(running_pods()) == 3 and {p["spec"]["nodeName"] for p in running_pods()} == {"node-b"},
                    "all three replicas Running on node-b", timeout=240)
    finally:
        nodes.procs["node-a"].start()
    nodes.until(lambda: _ready(nodes.json("get", "node", "node-a")), "node-a Ready again")
    nodes.kubectl("delete", "deployment", "mover", "-n", ns, check=True)
