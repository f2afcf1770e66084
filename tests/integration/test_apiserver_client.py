"""The official kubernetes Python client (strict models) against the dev cluster."""

from __future__ import annotations

import threading
import time
import uuid

import pytest
from kubernetes import client, watch
from kubernetes.client.rest import ApiException

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def ns(api: client.ApiClient) -> str:
    name = f"py-{uuid.uuid4().hex[:6]}"
    client.CoreV1Api(api).create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=name)))
    return name


def _deployment(name: str) -> client.V1Deployment:
    labels = {"app": name}
    return client.V1Deployment(
        metadata=client.V1ObjectMeta(name=name),
        spec=client.V1DeploymentSpec(
            replicas=1, selector=client.V1LabelSelector(match_labels=labels),
            template=client.V1PodTemplateSpec(metadata=client.V1ObjectMeta(labels=labels),
                                              spec=client.V1PodSpec(containers=[client.V1Container(
                                                  name="main", image="busybox")]))))


def test_create_read_list_and_defaults(api: client.ApiClient, ns: str) -> None:
    apps = client.AppsV1Api(api)
    created = apps.create_namespaced_deployment(ns, _deployment("d1"))
    assert created.metadata.uid and created.metadata.resource_version and created.metadata.generation == 1
    assert created.metadata.creation_timestamp is not None
    read = apps.read_namespaced_deployment("d1", ns)
    assert read.metadata.uid == created.metadata.uid
    assert read.spec.template.spec.containers[0].image == "busybox"
    listed = apps.list_namespaced_deployment(ns)
    assert [d.metadata.name for d in listed.items] == ["d1"]
    assert int(listed.metadata.resource_version) >= int(read.metadata.resource_version)
    everything = client.CoreV1Api(api).list_pod_for_all_namespaces()
    assert everything.items is not None


def test_patch_deployment_scale(api: client.ApiClient, ns: str) -> None:
    apps = client.AppsV1Api(api)
    apps.create_namespaced_deployment(ns, _deployment("d2"))
    scale = apps.patch_namespaced_deployment_scale("d2", ns, {"spec": {"replicas": 3}})
    assert scale.spec.replicas == 3
    assert apps.read_namespaced_deployment_scale("d2", ns).spec.replicas == 3
    assert apps.read_namespaced_deployment("d2", ns).spec.replicas == 3


def test_concurrent_patches_all_land_and_a_patch_pinned_to_a_stale_version_conflicts(api: client.ApiClient,
                                                                                       ns: str) -> None:
    """Patches race through three API servers: each loser re-patches the newer object, as Kubernetes does."""
    core = client.CoreV1Api(api)
    stale = core.create_namespaced_config_map(ns, client.V1ConfigMap(metadata=client.V1ObjectMeta(name="raced")))
    start = threading.Barrier(4)
    failures: list[BaseException] = []

    def patch(i: int) -> None:
        start.wait()
        for j in range(10):
            try:
                core.patch_namespaced_config_map("raced", ns, {"metadata": {"labels": {f"k{i}": str(j)}}})
            except ApiException as error:
                failures.append(error)

    threads = [threading.Thread(target=patch, args=(i,)) for i in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert failures == []
    assert core.read_namespaced_config_map("raced", ns).metadata.labels == {f"k{i}": "9" for i in range(4)}
    with pytest.raises(ApiException) as pinned:
        core.patch_namespaced_config_map("raced", ns, {"metadata": {
            "resourceVersion": stale.metadata.resource_version, "labels": {"late": "v"}}})
    assert pinned.value.status == 409


def test_status_subresource_and_main_resource_ignore_each_other(api: client.ApiClient, ns: str) -> None:
    apps = client.AppsV1Api(api)
    apps.create_namespaced_deployment(ns, _deployment("d3"))
    apps.patch_namespaced_deployment_status("d3", ns, {"status": {"replicas": 7}, "spec": {"replicas": 9}})
    live = apps.read_namespaced_deployment("d3", ns)
    assert live.status.replicas == 7 and live.spec.replicas == 1
    apps.patch_namespaced_deployment("d3", ns, {"status": {"replicas": 1}, "spec": {"replicas": 2}})
    live = apps.read_namespaced_deployment("d3", ns)
    assert live.status.replicas == 7 and live.spec.replicas == 2


def test_watch_stream_sees_changes_in_order(api: client.ApiClient, ns: str) -> None:
    core = client.CoreV1Api(api)
    start = core.list_namespaced_config_map(ns).metadata.resource_version

    def writer() -> None:
        time.sleep(0.3)
        for i in range(5):
            core.create_namespaced_config_map(ns, client.V1ConfigMap(metadata=client.V1ObjectMeta(name=f"w{i}")))
        core.delete_namespaced_config_map("w0", ns)

    thread = threading.Thread(target=writer)
    thread.start()
    seen = []
    w = watch.Watch()
    for event in w.stream(core.list_namespaced_config_map, ns, resource_version=start, timeout_seconds=20,
                          allow_watch_bookmarks=True):
        if event["type"] != "BOOKMARK":
            seen.append((event["type"], event["object"].metadata.name))
        if len(seen) == 6:
            w.stop()
    thread.join()
    assert seen == [*(("ADDED", f"w{i}") for i in range(5)), ("DELETED", "w0")]


def test_errors_are_status_objects_with_reasons(api: client.ApiClient, ns: str) -> None:
    core = client.CoreV1Api(api)
    with pytest.raises(ApiException) as missing:
        core.read_namespaced_config_map("absent", ns)
    assert missing.value.status == 404 and '"reason":"NotFound"' in missing.value.body.replace(" ", "")
    core.create_namespaced_config_map(ns, client.V1ConfigMap(metadata=client.V1ObjectMeta(name="dup")))
    with pytest.raises(ApiException) as dup:
        core.create_namespaced_config_map(ns, client.V1ConfigMap(metadata=client.V1ObjectMeta(name="dup")))
    assert dup.value.status == 409 and "AlreadyExists" in dup.value.body
    with pytest.raises(ApiException) as no_ns:
        core.create_namespaced_config_map("no-such-namespace",
                                          client.V1ConfigMap(metadata=client.V1ObjectMeta(name="x")))
    assert no_ns.value.status == 404 and "namespaces" in no_ns.value.body


def test_list_pages_with_limit_and_continue(api: client.ApiClient, ns: str) -> None:
    core = client.CoreV1Api(api)
    for i in range(7):
        core.create_namespaced_secret(ns, client.V1Secret(metadata=client.V1ObjectMeta(
            name=f"s{i}", labels={"even": str(i % 2 == 0).lower()})))
    names, token = [], None
    while True:
        page = core.list_namespaced_secret(ns, limit=3, _continue=token, label_selector="even=true")
        names += [s.metadata.name for s in page.items]
        token = page.metadata._continue
        if not token:
            break
    assert names == ["s0", "s2", "s4", "s6"]


def test_binding_assigns_a_pod_once_and_running_pods_delete_gracefully(api: client.ApiClient, ns: str) -> None:
    core = client.CoreV1Api(api)
    pod = client.V1Pod(metadata=client.V1ObjectMeta(name="bound"),
                       spec=client.V1PodSpec(containers=[client.V1Container(name="c", image="busybox")],
                                             termination_grace_period_seconds=20))
    core.create_namespaced_pod(ns, pod)
    binding = {"apiVersion": "v1", "kind": "Binding", "metadata": {"name": "bound"},
               "target": {"apiVersion": "v1", "kind": "Node", "name": "node-a"}}
    core.create_namespaced_pod_binding("bound", ns, binding, _preload_content=False)
    assert core.read_namespaced_pod("bound", ns).spec.node_name == "node-a"
    with pytest.raises(ApiException) as again:
        core.create_namespaced_pod_binding("bound", ns, {**binding, "target": {"kind": "Node", "name": "node-b"}},
                                           _preload_content=False)
    assert again.value.status == 409
    core.delete_namespaced_pod("bound", ns)
    terminating = core.read_namespaced_pod("bound", ns)
    assert terminating.metadata.deletion_timestamp is not None
    assert terminating.metadata.deletion_grace_period_seconds == 20
    core.delete_namespaced_pod("bound", ns, grace_period_seconds=0)
    with pytest.raises(ApiException) as gone:
        core.read_namespaced_pod("bound", ns)
    assert gone.value.status == 404
