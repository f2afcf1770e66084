"""The real kubectl against the 3-master dev cluster (through HAProxy): every verb the issue names."""

from __future__ import annotations

import json
import subprocess
import time
import uuid

import pytest
import yaml
from conftest import KUBECTL, DevCluster, Kubectl

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def ns(kubectl: Kubectl) -> str:
    name = f"kc-{uuid.uuid4().hex[:6]}"
    kubectl("create", "namespace", name, check=True)
    return name


def _deployment(name: str, *, image: str, replicas: int = 2) -> str:
    return yaml.safe_dump({
        "apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": name, "labels": {"app": name}},
        "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": name}},
                 "template": {"metadata": {"labels": {"app": name}},
                              "spec": {"containers": [{"name": "main", "image": image}]}}},
    })


def _configmap(name: str, **data: str) -> str:
    return yaml.safe_dump({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name}, "data": data})


def test_version_reports_a_minor_that_kubectl_bundles(kubectl: Kubectl) -> None:
    out = json.loads(kubectl("version", "-o", "json", check=True).stdout)
    assert out["serverVersion"]["major"] == "1"
    assert out["serverVersion"]["minor"] == "31"
    assert out["serverVersion"]["gitVersion"] == "v1.31.0"


def test_api_resources_lists_every_served_kind_with_scope_and_short_names(kubectl: Kubectl) -> None:
    out = kubectl("api-resources", "-o", "wide", check=True).stdout
    rows = {line.split()[0]: line for line in out.splitlines()[1:]}
    for plural in ("pods", "nodes", "namespaces", "services", "endpoints", "configmaps", "secrets", "events",
                   "serviceaccounts", "deployments", "replicasets", "leases", "roles", "rolebindings",
                   "clusterroles", "clusterrolebindings"):
        assert plural in rows, plural
    assert "deploy" in rows["deployments"] and "apps/v1" in rows["deployments"]
    assert "false" in rows["nodes"] and "true" in rows["pods"]


def test_explain_shows_field_documentation(kubectl: Kubectl) -> None:
    out = kubectl("explain", "deployment.spec.replicas", check=True).stdout
    assert "replicas" in out and "integer" in out


def test_get_in_every_output_form(kubectl: Kubectl, ns: str) -> None:
    kubectl("-n", ns, "apply", "-f", "-", stdin=_deployment("forms", image="nginx:1.25"), check=True)
    as_json = json.loads(kubectl("-n", ns, "get", "deployment", "forms", "-o", "json", check=True).stdout)
    assert as_json["spec"]["replicas"] == 2 and as_json["metadata"]["uid"]
    as_yaml = yaml.safe_load(kubectl("-n", ns, "get", "deployment", "forms", "-o", "yaml", check=True).stdout)
    assert as_yaml["metadata"]["resourceVersion"] == as_json["metadata"]["resourceVersion"]
    assert kubectl("-n", ns, "get", "deploy", "-o", "name", check=True).stdout.split() == ["deployment.apps/forms"]
    path = "{.spec.template.spec.containers[0].image}"
    assert kubectl("-n", ns, "get", "deploy", "forms", "-o", f"jsonpath={path}", check=True).stdout == "nginx:1.25"
    wide = kubectl("-n", ns, "get", "deploy", "forms", "-o", "wide", check=True).stdout
    assert "forms" in wide and "nginx:1.25" in wide
    table = kubectl("-n", ns, "get", "deploy", check=True).stdout
    assert table.split()[0] == "NAME" and "forms" in table


def test_get_watch_streams_changes(kubectl: Kubectl, dev_cluster: DevCluster, ns: str) -> None:
    argv = [KUBECTL, f"--kubeconfig={dev_cluster.kubeconfig}", f"--cache-dir={kubectl.cache_dir}", "-n", ns,
            "get", "configmaps", "-w", "-o", "name", "--field-selector=metadata.name=watched"]
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        time.sleep(1.0)
        kubectl("-n", ns, "create", "-f", "-", stdin=_configmap("watched", a="1"), check=True)
        assert proc.stdout is not None
        assert proc.stdout.readline().strip() == "configmap/watched"
        kubectl("-n", ns, "label", "configmap", "watched", "seen=yes", check=True)
        assert proc.stdout.readline().strip() == "configmap/watched"
        assert proc.poll() is None, "kubectl get -w must keep streaming"
    finally:
        proc.kill()
        proc.wait()


def test_get_watch_prints_table_rows(kubectl: Kubectl, dev_cluster: DevCluster, ns: str) -> None:
    argv = [KUBECTL, f"--kubeconfig={dev_cluster.kubeconfig}", f"--cache-dir={kubectl.cache_dir}", "-n", ns,
            "get", "deployments", "-w", "--field-selector=metadata.name=tabled"]
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        time.sleep(1.0)
        kubectl("-n", ns, "apply", "-f", "-", stdin=_deployment("tabled", image="busybox"), check=True)
        assert proc.stdout is not None
        assert proc.stdout.readline().split()[:2] == ["NAME", "READY"]
        assert proc.stdout.readline().split()[0] == "tabled"
    finally:
        proc.kill()
        proc.wait()


def test_apply_twice_with_a_changed_manifest_then_diff_and_server_side_apply(kubectl: Kubectl, ns: str) -> None:
    assert "created" in kubectl("-n", ns, "apply", "-f", "-", stdin=_deployment("app", image="nginx:1.25"),
                                check=True).stdout
    assert "unchanged" in kubectl("-n", ns, "apply", "-f", "-", stdin=_deployment("app", image="nginx:1.25"),
                                  check=True).stdout
    changed = _deployment("app", image="nginx:1.26")
    diff = kubectl("-n", ns, "diff", "-f", "-", stdin=changed)
    assert diff.returncode == 1 and "+      - image: nginx:1.26" in diff.stdout
    assert "configured" in kubectl("-n", ns, "apply", "-f", "-", stdin=changed, check=True).stdout
    live = json.loads(kubectl("-n", ns, "get", "deploy", "app", "-o", "json", check=True).stdout)
    assert live["spec"]["template"]["spec"]["containers"][0]["image"] == "nginx:1.26"
    assert live["metadata"]["generation"] == 2
    assert "kubectl.kubernetes.io/last-applied-configuration" in live["metadata"]["annotations"]
    assert kubectl("-n", ns, "diff", "-f", "-", stdin=changed).returncode == 0
    ssa = _deployment("app", image="nginx:1.27", replicas=4)
    assert "serverside-applied" in kubectl("-n", ns, "apply", "--server-side", "--force-conflicts", "-f", "-",
                                           stdin=ssa, check=True).stdout
    live = json.loads(kubectl("-n", ns, "get", "deploy", "app", "-o", "json", check=True).stdout)
    assert live["spec"]["replicas"] == 4
    assert live["spec"]["template"]["spec"]["containers"][0]["image"] == "nginx:1.27"
    fresh = _configmap("ssa-created", k="v")
    kubectl("-n", ns, "apply", "--server-side", "-f", "-", stdin=fresh, check=True)
    assert kubectl("-n", ns, "get", "cm", "ssa-created", "-o", "jsonpath={.data.k}", check=True).stdout == "v"


def test_label_annotate_and_each_patch_type(kubectl: Kubectl, ns: str) -> None:
    kubectl("-n", ns, "create", "-f", "-", stdin=_configmap("patched", a="1"), check=True)
    kubectl("-n", ns, "label", "cm", "patched", "tier=web", check=True)
    kubectl("-n", ns, "annotate", "cm", "patched", "note=hello", check=True)
    kubectl("-n", ns, "patch", "cm", "patched", "--type=strategic", "-p", '{"data":{"b":"2"}}', check=True)
    kubectl("-n", ns, "patch", "cm", "patched", "--type=merge", "-p", '{"data":{"a":null,"c":"3"}}', check=True)
    kubectl("-n", ns, "patch", "cm", "patched", "--type=json", "-p", '[{"op":"add","path":"/data/d","value":"4"}]',
            check=True)
    live = json.loads(kubectl("-n", ns, "get", "cm", "patched", "-o", "json", check=True).stdout)
    assert live["data"] == {"b": "2", "c": "3", "d": "4"}
    assert live["metadata"]["labels"] == {"tier": "web"}
    assert live["metadata"]["annotations"]["note"] == "hello"
    assert kubectl("-n", ns, "get", "cm", "-l", "tier=web", "-o", "name", check=True).stdout.split() == [
        "configmap/patched"]
    failing_test = '[{"op":"test","path":"/data/b","value":"x"}]'
    bad = kubectl("-n", ns, "patch", "cm", "patched", "--type=json", "-p", failing_test)
    assert bad.returncode != 0


def test_scale_and_describe(kubectl: Kubectl, ns: str) -> None:
    kubectl("-n", ns, "apply", "-f", "-", stdin=_deployment("scaled", image="busybox"), check=True)
    kubectl("-n", ns, "scale", "deployment", "scaled", "--replicas=5", check=True)
    assert kubectl("-n", ns, "get", "deploy", "scaled", "-o", "jsonpath={.spec.replicas}", check=True).stdout == "5"
    described = kubectl("-n", ns, "describe", "deployment", "scaled", check=True).stdout
    assert "Name:" in described and "scaled" in described and "busybox" in described


def test_replace_with_a_stale_resource_version_is_a_conflict(kubectl: Kubectl, ns: str) -> None:
    kubectl("-n", ns, "create", "-f", "-", stdin=_configmap("replaced", v="1"), check=True)
    stale = kubectl("-n", ns, "get", "cm", "replaced", "-o", "yaml", check=True).stdout
    kubectl("-n", ns, "patch", "cm", "replaced", "--type=merge", "-p", '{"data":{"v":"2"}}', check=True)
    result = kubectl("-n", ns, "replace", "-f", "-", stdin=stale)
    assert result.returncode != 0
    assert "Conflict" in result.stderr and "the object has been modified" in result.stderr
    assert kubectl("-n", ns, "get", "cm", "replaced", "-o", "jsonpath={.data.v}", check=True).stdout == "2"


def test_delete_removes_the_object_and_honours_finalizers(kubectl: Kubectl, ns: str) -> None:
    kubectl("-n", ns, "create", "-f", "-", stdin=_configmap("doomed"), check=True)
    kubectl("-n", ns, "delete", "cm", "doomed", check=True)
    assert "NotFound" in kubectl("-n", ns, "get", "cm", "doomed").stderr
    held = yaml.safe_load(_configmap("held"))
    held["metadata"]["finalizers"] = ["example.com/hold"]
    kubectl("-n", ns, "create", "-f", "-", stdin=yaml.safe_dump(held), check=True)
    kubectl("-n", ns, "delete", "cm", "held", "--wait=false", check=True)
    live = json.loads(kubectl("-n", ns, "get", "cm", "held", "-o", "json", check=True).stdout)
    assert live["metadata"]["deletionTimestamp"]
    kubectl("-n", ns, "patch", "cm", "held", "--type=merge", "-p", '{"metadata":{"finalizers":null}}', check=True)
    assert "NotFound" in kubectl("-n", ns, "get", "cm", "held").stderr


def test_dry_run_never_persists(kubectl: Kubectl, ns: str) -> None:
    out = kubectl("-n", ns, "create", "-f", "-", "--dry-run=server", stdin=_configmap("dry"), check=True).stdout
    assert "server dry run" in out
    assert "NotFound" in kubectl("-n", ns, "get", "cm", "dry").stderr


def test_deleting_a_namespace_marks_it_terminating_and_refuses_new_content(kubectl: Kubectl) -> None:
    name = f"term-{uuid.uuid4().hex[:6]}"
    kubectl("create", "namespace", name, check=True)
    kubectl("delete", "namespace", name, "--wait=false", check=True)
    assert kubectl("get", "ns", name, "-o", "jsonpath={.status.phase}", check=True).stdout == "Terminating"
    refused = kubectl("-n", name, "create", "-f", "-", stdin=_configmap("late"))
    assert refused.returncode != 0 and "being terminated" in refused.stderr
