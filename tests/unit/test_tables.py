"""Table output: kubectl's columns and cells for each kind."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from provisioner.controlplane.apiserver.resources import ResourceType, by_kind
from provisioner.controlplane.apiserver.tables import human_duration, to_table

NOW = datetime(2026, 1, 10, 12, 0, 0, tzinfo=UTC)
CREATED = "2026-01-10T11:55:00Z"  # five minutes before NOW

Obj = dict[str, Any]


def _rt(api_version: str, kind: str) -> ResourceType:
    rt = by_kind(api_version, kind)
    assert rt is not None
    return rt


def _cells(api_version: str, kind: str, obj: Obj) -> dict[str, Any]:
    table = to_table(_rt(api_version, kind), [obj], now=NOW)
    names = [c["name"] for c in table["columnDefinitions"]]
    return dict(zip(names, table["rows"][0]["cells"], strict=True))


@pytest.mark.parametrize(("seconds", "text"), [
    pytest.param(-5, "<invalid>", id="future"), pytest.param(-0.5, "0s", id="clock-skew"),
    pytest.param(0, "0s", id="zero"), pytest.param(119, "119s", id="under-two-minutes"),
    pytest.param(150, "2m30s", id="minutes-seconds"), pytest.param(300, "5m", id="round-minutes"),
    pytest.param(11 * 60 + 5, "11m", id="minutes"), pytest.param(4 * 3600 + 120, "4h2m", id="hours-minutes"),
    pytest.param(10 * 3600, "10h", id="hours"), pytest.param(3 * 86400 + 7200, "3d2h", id="days-hours"),
    pytest.param(30 * 86400, "30d", id="days"), pytest.param(3 * 365 * 86400 + 86400, "3y1d", id="years-days"),
    pytest.param(9 * 365 * 86400, "9y", id="years"),
])
def test_human_duration_matches_go(seconds: float, text: str) -> None:
    assert human_duration(seconds) == text


@pytest.mark.parametrize(("kind", "api_version", "columns", "wide"), [
    pytest.param("Pod", "v1", ["Name", "Ready", "Status", "Restarts", "Age"],
                 ["IP", "Node", "Nominated Node", "Readiness Gates"], id="pods"),
    pytest.param("Node", "v1", ["Name", "Status", "Roles", "Age", "Version"],
                 ["Internal-IP", "External-IP", "OS-Image", "Kernel-Version", "Container-Runtime"], id="nodes"),
    pytest.param("Deployment", "apps/v1", ["Name", "Ready", "Up-to-date", "Available", "Age"],
                 ["Containers", "Images", "Selector"], id="deployments"),
    pytest.param("ReplicaSet", "apps/v1", ["Name", "Desired", "Current", "Ready", "Age"],
                 ["Containers", "Images", "Selector"], id="replicasets"),
    pytest.param("Service", "v1", ["Name", "Type", "Cluster-IP", "External-IP", "Port(s)", "Age"], ["Selector"],
                 id="services"),
    pytest.param("Event", "v1", ["Last Seen", "Type", "Reason", "Object", "Message"],
                 ["Subobject", "Source", "Count", "Name"], id="events"),
    pytest.param("Namespace", "v1", ["Name", "Status", "Age"], [], id="namespaces"),
    pytest.param("ServiceAccount", "v1", ["Name", "Age"], [], id="default"),
])
def test_columns_match_kubectl(kind: str, api_version: str, columns: list[str], wide: list[str]) -> None:
    definitions = to_table(_rt(api_version, kind), [], now=NOW)["columnDefinitions"]
    assert [c["name"] for c in definitions if c["priority"] == 0] == columns
    assert [c["name"] for c in definitions if c["priority"] == 1] == wide
    assert all(c["description"] for c in definitions)


def _pod(status: Obj, **meta: Any) -> Obj:
    return {"metadata": {"name": "web", "creationTimestamp": CREATED, **meta},
            "spec": {"containers": [{"name": "a"}, {"name": "b"}], "nodeName": "node-1"}, "status": status}


@pytest.mark.parametrize(("status", "meta", "expected"), [
    pytest.param({"phase": "Pending"}, {}, "Pending", id="pending"),
    pytest.param({"phase": "Running", "containerStatuses": [
        {"name": "a", "ready": True, "state": {"running": {}}},
        {"name": "b", "ready": True, "state": {"running": {}}}]}, {}, "Running", id="running"),
    pytest.param({"phase": "Pending", "containerStatuses": [
        {"name": "a", "ready": False, "state": {"waiting": {"reason": "ContainerCreating"}}}]}, {},
        "ContainerCreating", id="waiting-reason"),
    pytest.param({"phase": "Running", "containerStatuses": [
        {"name": "a", "ready": False, "state": {"waiting": {"reason": "CrashLoopBackOff"}}}]}, {},
        "CrashLoopBackOff", id="crash-loop"),
    pytest.param({"phase": "Failed", "containerStatuses": [
        {"name": "a", "state": {"terminated": {"exitCode": 3}}}]}, {}, "ExitCode:3", id="exit-code"),
    pytest.param({"phase": "Succeeded", "containerStatuses": [
        {"name": "a", "state": {"terminated": {"exitCode": 0, "reason": "Completed"}}}]}, {}, "Completed",
        id="completed"),
    pytest.param({"phase": "Failed", "reason": "Evicted"}, {}, "Evicted", id="pod-reason"),
    pytest.param({"phase": "Running"}, {"deletionTimestamp": CREATED}, "Terminating", id="terminating"),
    pytest.param({"phase": "Pending", "initContainerStatuses": [
        {"name": "i", "state": {"waiting": {"reason": "PodInitializing"}}}]}, {}, "Init:0/0", id="initialising"),
])
def test_pod_status_cell(status: Obj, meta: Obj, expected: str) -> None:
    assert _cells("v1", "Pod", _pod(status, **meta))["Status"] == expected


def test_pod_cells() -> None:
    pod = _pod({"phase": "Running", "podIP": "10.0.0.5", "containerStatuses": [
        {"name": "a", "ready": True, "restartCount": 2, "state": {"running": {}},
         "lastState": {"terminated": {"exitCode": 1, "finishedAt": "2026-01-10T11:58:00Z"}}},
        {"name": "b", "ready": False, "restartCount": 1, "state": {"running": {}}}]})
    cells = _cells("v1", "Pod", pod)
    assert cells == {"Name": "web", "Ready": "1/2", "Status": "Running", "Restarts": "3 (2m ago)", "Age": "5m",
                     "IP": "10.0.0.5", "Node": "node-1", "Nominated Node": "<none>", "Readiness Gates": "<none>"}


def test_node_cells() -> None:
    node = {"metadata": {"name": "n1", "creationTimestamp": CREATED,
                         "labels": {"node-role.kubernetes.io/control-plane": "", "node-role.kubernetes.io/master": ""}},
            "spec": {"unschedulable": True},
            "status": {"conditions": [{"type": "Ready", "status": "True"}],
                       "addresses": [{"type": "InternalIP", "address": "127.0.0.21"}],
                       "nodeInfo": {"kubeletVersion": "v1.30.0", "osImage": "Debian GNU/Linux 12",
                                    "kernelVersion": "6.1.0", "containerRuntimeVersion": "provisioner://0.1"}}}
    assert _cells("v1", "Node", node) == {
        "Name": "n1", "Status": "Ready,SchedulingDisabled", "Roles": "control-plane,master", "Age": "5m",
        "Version": "v1.30.0", "Internal-IP": "127.0.0.21", "External-IP": "<none>",
        "OS-Image": "Debian GNU/Linux 12", "Kernel-Version": "6.1.0", "Container-Runtime": "provisioner://0.1"}


def test_node_without_ready_condition_is_unknown() -> None:
    assert _cells("v1", "Node", {"metadata": {"name": "n"}})["Status"] == "Unknown"


def test_deployment_and_replica_set_cells() -> None:
    template = {"spec": {"containers": [{"name": "web", "image": "nginx:1.25"}, {"name": "log", "image": "busybox"}]}}
    deployment = {"metadata": {"name": "d", "creationTimestamp": CREATED},
                  "spec": {"replicas": 3, "selector": {"matchLabels": {"app": "d"}, "matchExpressions": [
                      {"key": "tier", "operator": "In", "values": ["a", "b"]}]}, "template": template},
                  "status": {"readyReplicas": 2, "updatedReplicas": 3, "availableReplicas": 2}}
    assert _cells("apps/v1", "Deployment", deployment) == {
        "Name": "d", "Ready": "2/3", "Up-to-date": 3, "Available": 2, "Age": "5m", "Containers": "web,log",
        "Images": "nginx:1.25,busybox", "Selector": "app=d,tier in (a,b)"}
    replica_set = {**deployment, "status": {"replicas": 3, "readyReplicas": 1}}
    cells = _cells("apps/v1", "ReplicaSet", replica_set)
    assert (cells["Desired"], cells["Current"], cells["Ready"]) == (3, 3, 1)


@pytest.mark.parametrize(("spec", "status", "external", "ports"), [
    pytest.param({"type": "ClusterIP", "clusterIP": "10.96.0.1", "ports": [{"port": 443, "protocol": "TCP"}]}, {},
                 "<none>", "443/TCP", id="cluster-ip"),
    pytest.param({"type": "NodePort", "clusterIP": "10.96.0.2",
                  "ports": [{"port": 80, "nodePort": 30080, "protocol": "TCP"}, {"port": 53, "protocol": "UDP"}]},
                 {}, "<none>", "80:30080/TCP,53/UDP", id="node-port"),
    pytest.param({"type": "LoadBalancer", "clusterIP": "10.96.0.3", "ports": [{"port": 80}]}, {}, "<pending>",
                 "80/TCP", id="load-balancer-pending"),
    pytest.param({"type": "LoadBalancer", "clusterIP": "10.96.0.3", "ports": [{"port": 80}]},
                 {"loadBalancer": {"ingress": [{"ip": "127.0.0.50"}]}}, "127.0.0.50", "80/TCP", id="load-balancer"),
    pytest.param({"type": "ExternalName", "externalName": "db.example.com"}, {}, "db.example.com", "<none>",
                 id="external-name"),
])
def test_service_cells(spec: Obj, status: Obj, external: str, ports: str) -> None:
    cells = _cells("v1", "Service", {"metadata": {"name": "s", "creationTimestamp": CREATED}, "spec": spec,
                                     "status": status})
    assert (cells["External-IP"], cells["Port(s)"]) == (external, ports)


def test_event_cells() -> None:
    event = {"metadata": {"name": "web.1", "creationTimestamp": CREATED}, "type": "Warning", "reason": "BackOff",
             "message": "Back-off restarting failed container\n", "lastTimestamp": "2026-01-10T11:59:30Z",
             "involvedObject": {"kind": "Pod", "name": "web", "fieldPath": "spec.containers{a}"},
             "source": {"component": "kubelet", "host": "node-1"}, "count": 4}
    assert _cells("v1", "Event", event) == {
        "Last Seen": "30s", "Type": "Warning", "Reason": "BackOff", "Object": "pod/web",
        "Message": "Back-off restarting failed container", "Subobject": "spec.containers{a}",
        "Source": "kubelet, node-1", "Count": 4, "Name": "web.1"}


def test_missing_creation_timestamp_is_unknown_age() -> None:
    assert _cells("v1", "Namespace", {"metadata": {"name": "n"}, "status": {"phase": "Terminating"}}) == {
        "Name": "n", "Status": "Terminating", "Age": "<unknown>"}


@pytest.mark.parametrize(("include", "expected"), [
    pytest.param("Metadata", {"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1",
                              "metadata": {"name": "cm", "labels": {"a": "b"}}}, id="metadata"),
    pytest.param("Object", {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "cm", "labels": {"a": "b"}},
                            "data": {"k": "v"}}, id="object"),
    pytest.param("None", None, id="none"),
])
def test_rows_carry_the_requested_object(include: str, expected: Obj | None) -> None:
    obj = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "cm", "labels": {"a": "b"}},
           "data": {"k": "v"}}
    table = to_table(_rt("v1", "ConfigMap"), [obj], include_object=include, now=NOW)
    assert table["kind"] == "Table"
    assert table["apiVersion"] == "meta.k8s.io/v1"
    assert table["rows"][0].get("object") == expected
