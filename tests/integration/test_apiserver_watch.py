"""Watch semantics over HTTP: bookmarks, resuming, 410 Expired after compaction, pods/log without a node."""

from __future__ import annotations

import asyncio
import json
import uuid

import pytest
import urllib3
from conftest import DevCluster, Kubectl

from provisioner.controlplane.store import Store, TlsEtcdClient

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def ns(kubectl: Kubectl) -> str:
    name = f"watch-{uuid.uuid4().hex[:6]}"
    kubectl("create", "namespace", name, check=True)
    return name


def _events(http: urllib3.PoolManager, url: str) -> list[dict]:
    response = http.request("GET", url, preload_content=False, timeout=urllib3.Timeout(connect=5, read=60))
    assert response.status == 200
    lines = [line for line in response.data.split(b"\n") if line.strip()]
    return [json.loads(line) for line in lines]


def _create(http: urllib3.PoolManager, dev_cluster: DevCluster, ns: str, name: str) -> str:
    body = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name}, "data": {"v": "1"}}
    response = http.request("POST", f"{dev_cluster.server}/api/v1/namespaces/{ns}/configmaps",
                            body=json.dumps(body).encode(), headers={"Content-Type": "application/json"})
    assert response.status == 201, response.data
    return str(json.loads(response.data)["metadata"]["resourceVersion"])


def test_watch_resumes_after_a_revision_and_sends_bookmarks(http: urllib3.PoolManager, dev_cluster: DevCluster,
                                                            ns: str) -> None:
    first = _create(http, dev_cluster, ns, "r1")
    second = _create(http, dev_cluster, ns, "r2")
    url = (f"{dev_cluster.server}/api/v1/namespaces/{ns}/configmaps?watch=1&resourceVersion={first}"
           "&allowWatchBookmarks=true&timeoutSeconds=12")
    events = _events(http, url)
    assert events[0]["type"] == "ADDED" and events[0]["object"]["metadata"]["name"] == "r2"
    assert events[0]["object"]["metadata"]["resourceVersion"] == second
    bookmarks = [e for e in events if e["type"] == "BOOKMARK"]
    assert bookmarks and bookmarks[-1]["object"]["metadata"]["resourceVersion"] == second
    assert bookmarks[-1]["object"]["kind"] == "ConfigMap"


def test_watch_without_a_version_starts_with_every_existing_object(http: urllib3.PoolManager,
                                                                   dev_cluster: DevCluster, ns: str) -> None:
    _create(http, dev_cluster, ns, "existing")
    events = _events(http, f"{dev_cluster.server}/api/v1/namespaces/{ns}/configmaps?watch=true&timeoutSeconds=1"
                           "&labelSelector=")
    assert "existing" in {e["object"]["metadata"]["name"] for e in events if e["type"] == "ADDED"}


def test_watch_from_a_compacted_revision_gets_410_expired(http: urllib3.PoolManager, dev_cluster: DevCluster,
                                                          ns: str) -> None:
    _create(http, dev_cluster, ns, "compacted")
    pki = dev_cluster.ca_file.parent

    async def compact() -> None:
        store = Store(TlsEtcdClient(endpoints=dev_cluster.etcd_endpoints, ca_file=dev_cluster.ca_file,
                                    cert_file=pki / "apiserver-etcd-client.crt",
                                    key_file=pki / "apiserver-etcd-client.key"))
        await store.compact(await store.current_revision())
        await store.close()

    asyncio.run(compact())
    # A watch cache may still hold revisions etcd compacted (it serves them, as kube-apiserver's does); restarted
    # API servers hold nothing older than the compaction, so etcd itself must answer, and it has compacted them.
    for name in ("apiserver-0", "apiserver-1", "apiserver-2"):
        dev_cluster.kill(name)
    dev_cluster.restart()
    events = _events(http, f"{dev_cluster.server}/api/v1/namespaces/{ns}/configmaps?watch=true"
                           "&resourceVersion=1&timeoutSeconds=5")
    assert events[-1]["type"] == "ERROR"
    assert (events[-1]["object"]["code"], events[-1]["object"]["reason"]) == (410, "Expired")


def test_pod_logs_of_an_unscheduled_pod_say_so(kubectl: Kubectl, ns: str) -> None:
    pod = "apiVersion: v1\nkind: Pod\nmetadata: {name: idle}\nspec:\n  containers: [{name: c, image: busybox}]\n"
    kubectl("-n", ns, "apply", "-f", "-", stdin=pod, check=True)
    result = kubectl("-n", ns, "logs", "idle")
    assert result.returncode != 0 and "not scheduled to a node" in result.stderr
