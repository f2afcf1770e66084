"""Several API servers over one etcd cluster behave as one, and survive losing a member of either."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Iterator

import pytest
from conftest import DevCluster
from kubernetes import client, config, watch
from kubernetes.client.rest import ApiException

pytestmark = pytest.mark.integration


def _client(dev_cluster: DevCluster, server: str) -> client.ApiClient:
    api = config.new_client_from_config(str(dev_cluster.kubeconfig))
    api.configuration.host = server
    return api


@pytest.fixture(scope="module")
def ns(dev_cluster: DevCluster) -> Iterator[str]:
    name = f"ha-{uuid.uuid4().hex[:6]}"
    api = _client(dev_cluster, dev_cluster.server)
    client.CoreV1Api(api).create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=name)))
    yield name
    api.close()


def test_a_write_through_one_server_is_seen_in_order_by_a_watch_through_another(dev_cluster: DevCluster,
                                                                                ns: str) -> None:
    writer_api, watcher_api = (_client(dev_cluster, s) for s in dev_cluster.apiservers[:2])
    writer, watcher = client.CoreV1Api(writer_api), client.CoreV1Api(watcher_api)
    start = watcher.list_namespaced_config_map(ns).metadata.resource_version
    names = [f"order-{i}" for i in range(20)]

    def write() -> None:
        time.sleep(0.3)
        for name in names:
            writer.create_namespaced_config_map(ns, client.V1ConfigMap(metadata=client.V1ObjectMeta(name=name)))

    thread = threading.Thread(target=write)
    thread.start()
    seen: list[str] = []
    w = watch.Watch()
    for event in w.stream(watcher.list_namespaced_config_map, ns, resource_version=start, timeout_seconds=30):
        seen.append(event["object"].metadata.name)
        if len(seen) == len(names):
            w.stop()
    thread.join()
    assert seen == names
    writer_api.close()
    watcher_api.close()


def _write_while(dev_cluster: DevCluster, ns: str, *, tag: str, disrupt: str) -> list[str]:
    """Create config maps through HAProxy while `disrupt` is killed and restarted; the acknowledged names."""
    api = _client(dev_cluster, dev_cluster.server)
    core = client.CoreV1Api(api)
    acknowledged: list[str] = []
    stop = threading.Event()

    def write() -> None:
        i = 0
        while not stop.is_set():
            name = f"{tag}-{i}"
            i += 1
            try:
                core.create_namespaced_config_map(ns, client.V1ConfigMap(metadata=client.V1ObjectMeta(name=name)))
                acknowledged.append(name)
            except ApiException as error:
                if error.status == 409:  # an attempt that landed before its connection broke
                    acknowledged.append(name)
            except Exception:  # connection reset by the killed server: not acknowledged
                time.sleep(0.05)

    thread = threading.Thread(target=write)
    thread.start()
    try:
        time.sleep(1.0)
        dev_cluster.kill(disrupt)
        time.sleep(2.0)
        dev_cluster.restart()
        time.sleep(1.0)
    finally:
        stop.set()
        thread.join()
    api.close()
    return acknowledged


@pytest.mark.parametrize("victim", ["apiserver-1", "etcd-0"])
def test_restarting_one_member_loses_no_acknowledged_write(dev_cluster: DevCluster, ns: str, victim: str) -> None:
    tag = victim.replace("-", "")
    acknowledged = _write_while(dev_cluster, ns, tag=tag, disrupt=victim)
    assert len(acknowledged) > 10
    api = _client(dev_cluster, dev_cluster.server)
    stored = {cm.metadata.name for cm in client.CoreV1Api(api).list_namespaced_config_map(ns).items}
    api.close()
    assert set(acknowledged) <= stored
