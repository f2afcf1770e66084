"""Service cluster IPs: allocated from 10.96.0.0/12 across all API servers, kept on update, freed on delete."""

from __future__ import annotations

import ipaddress
import json
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import pytest
from conftest import DevCluster, Kubectl
from kubernetes import client
from kubernetes.client.rest import ApiException

pytestmark = pytest.mark.integration

SERVICE_CIDR = ipaddress.ip_network("10.96.0.0/12")


@pytest.fixture(scope="module")
def ns(api: client.ApiClient) -> str:
    name = f"svc-{uuid.uuid4().hex[:6]}"
    client.CoreV1Api(api).create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=name)))
    return name


def _service(name: str, *, cluster_ip: str | None = None, kind: str | None = None) -> client.V1Service:
    spec = client.V1ServiceSpec(selector={"app": name}, ports=[client.V1ServicePort(port=80)],
                                cluster_ip=cluster_ip, type=kind)
    if kind == "ExternalName":
        spec = client.V1ServiceSpec(type=kind, external_name="example.invalid")
    return client.V1Service(metadata=client.V1ObjectMeta(name=name), spec=spec)


def _invalid_fields(error: ApiException) -> list[str]:
    body = json.loads(error.body)
    assert body["reason"] == "Invalid", body
    return [cause["field"] for cause in body["details"]["causes"]]


def test_kubernetes_service_has_the_first_address_and_every_api_server_as_endpoint(
        api: client.ApiClient, dev_cluster: DevCluster) -> None:
    core = client.CoreV1Api(api)
    service = core.read_namespaced_service("kubernetes", "default")
    assert service.spec.cluster_ip == "10.96.0.1" and service.spec.cluster_ips == ["10.96.0.1"]
    assert [(p.name, p.port) for p in service.spec.ports] == [("https", 443)]
    endpoints = core.read_namespaced_endpoints("kubernetes", "default")
    served = {(a.ip, p.port) for s in endpoints.subsets for a in s.addresses for p in s.ports}
    expected = {(url.removeprefix("https://").rsplit(":", 1)[0], int(url.rsplit(":", 1)[1]))
                for url in dev_cluster.apiservers}
    assert served == expected


def test_kubectl_shows_an_allocated_cluster_ip(kubectl: Kubectl, ns: str) -> None:
    kubectl("-n", ns, "create", "service", "clusterip", "web", "--tcp=80:8080", check=True)
    shown = kubectl("-n", ns, "get", "svc", "web", "--no-headers", check=True).stdout.split()
    assert shown[0] == "web" and shown[1] == "ClusterIP"
    assert ipaddress.ip_address(shown[2]) in SERVICE_CIDR
    as_json = json.loads(kubectl("-n", ns, "get", "svc", "web", "-o", "json", check=True).stdout)
    assert as_json["spec"]["clusterIPs"] == [shown[2]]
    assert as_json["spec"]["ipFamilies"] == ["IPv4"]


def test_put_without_cluster_ip_keeps_it_and_a_change_is_refused(api: client.ApiClient, ns: str) -> None:
    core = client.CoreV1Api(api)
    created = core.create_namespaced_service(ns, _service("keep"))
    ip = created.spec.cluster_ip
    replacement = _service("keep")
    replacement.metadata.labels = {"changed": "yes"}
    replaced = core.replace_namespaced_service("keep", ns, replacement)
    assert replaced.spec.cluster_ip == ip and replaced.metadata.labels == {"changed": "yes"}
    other = str(ipaddress.ip_address(ip) + 1)
    with pytest.raises(ApiException) as refused:
        core.replace_namespaced_service("keep", ns, _service("keep", cluster_ip=other))
    assert refused.value.status == 422 and _invalid_fields(refused.value) == ["spec.clusterIP"]


def test_requested_address_taken_is_422_and_delete_frees_it(api: client.ApiClient, ns: str) -> None:
    core = client.CoreV1Api(api)
    core.create_namespaced_service(ns, _service("first", cluster_ip="10.100.7.7"))
    with pytest.raises(ApiException) as taken:
        core.create_namespaced_service(ns, _service("second", cluster_ip="10.100.7.7"))
    assert taken.value.status == 422 and _invalid_fields(taken.value) == ["spec.clusterIP"]
    assert "already allocated" in json.loads(taken.value.body)["message"]
    with pytest.raises(ApiException):
        core.read_namespaced_service("second", ns)
    core.delete_namespaced_service("first", ns)
    assert core.create_namespaced_service(ns, _service("second", cluster_ip="10.100.7.7")).spec.cluster_ip == (
        "10.100.7.7")


@pytest.mark.parametrize("requested", ["192.168.0.10", "not-an-ip"], ids=["outside-range", "malformed"])
def test_requested_address_must_be_a_valid_ip_in_the_range(api: client.ApiClient, ns: str, requested: str) -> None:
    with pytest.raises(ApiException) as refused:
        client.CoreV1Api(api).create_namespaced_service(ns, _service(f"bad-{uuid.uuid4().hex[:4]}",
                                                                     cluster_ip=requested))
    assert refused.value.status == 422 and _invalid_fields(refused.value) == ["spec.clusterIP"]


def test_a_failed_create_gives_its_address_back(api: client.ApiClient, ns: str) -> None:
    core = client.CoreV1Api(api)
    core.create_namespaced_service(ns, _service("dup"))
    with pytest.raises(ApiException) as exists:
        core.create_namespaced_service(ns, _service("dup", cluster_ip="10.100.8.8"))
    assert exists.value.status == 409
    assert core.create_namespaced_service(ns, _service("after-dup", cluster_ip="10.100.8.8")).spec.cluster_ip == (
        "10.100.8.8")


def test_dry_run_claims_nothing(api: client.ApiClient, ns: str) -> None:
    core = client.CoreV1Api(api)
    dry = core.create_namespaced_service(ns, _service("dry", cluster_ip="10.100.9.9"), dry_run="All")
    assert dry.spec.cluster_ip == "10.100.9.9"
    assert core.create_namespaced_service(ns, _service("wet", cluster_ip="10.100.9.9")).spec.cluster_ip == (
        "10.100.9.9")


def test_headless_and_external_name_services_get_no_address(api: client.ApiClient, ns: str) -> None:
    core = client.CoreV1Api(api)
    headless = core.create_namespaced_service(ns, _service("headless", cluster_ip="None"))
    assert headless.spec.cluster_ip == "None" and headless.spec.cluster_ips == ["None"]
    external = core.create_namespaced_service(ns, _service("external", kind="ExternalName"))
    assert external.spec.cluster_ip is None


def test_changing_to_external_name_frees_the_address(api: client.ApiClient, ns: str) -> None:
    core = client.CoreV1Api(api)
    core.create_namespaced_service(ns, _service("moving", cluster_ip="10.100.10.10"))
    core.replace_namespaced_service("moving", ns, _service("moving", kind="ExternalName"))
    assert core.read_namespaced_service("moving", ns).spec.cluster_ip is None
    assert core.create_namespaced_service(ns, _service("taker", cluster_ip="10.100.10.10")).spec.cluster_ip == (
        "10.100.10.10")


@pytest.fixture(scope="module")
def per_server(dev_cluster: DevCluster) -> Iterator[list[client.CoreV1Api]]:
    """One client per API server (not through HAProxy), so concurrent writes really race across servers."""
    clients = []
    for url in dev_cluster.apiservers:
        configuration = client.Configuration()
        configuration.host = url
        configuration.ssl_ca_cert = str(dev_cluster.ca_file)
        configuration.cert_file = str(dev_cluster.admin_cert)
        configuration.key_file = str(dev_cluster.admin_key)
        clients.append(client.ApiClient(configuration))
    yield [client.CoreV1Api(c) for c in clients]
    for api_client in clients:
        api_client.close()


def test_concurrent_creates_through_every_api_server_get_distinct_addresses(
        per_server: list[client.CoreV1Api], ns: str) -> None:
    def create(i: int) -> str:
        return str(per_server[i % len(per_server)].create_namespaced_service(ns, _service(f"many-{i}")).spec.cluster_ip)

    with ThreadPoolExecutor(max_workers=12) as pool:
        ips = list(pool.map(create, range(36)))
    assert len(set(ips)) == 36
    assert all(ipaddress.ip_address(ip) in SERVICE_CIDR and ip != "10.96.0.1" for ip in ips)


def test_one_address_requested_through_every_api_server_at_once_goes_to_exactly_one(
        per_server: list[client.CoreV1Api], ns: str) -> None:
    def create(i: int) -> int:
        try:
            per_server[i % len(per_server)].create_namespaced_service(ns, _service(f"race-{i}",
                                                                                   cluster_ip="10.100.11.11"))
        except ApiException as error:
            assert _invalid_fields(error) == ["spec.clusterIP"]
            return error.status
        return 201

    with ThreadPoolExecutor(max_workers=9) as pool:
        codes = sorted(pool.map(create, range(9)))
    assert codes == [201] + [422] * 8
