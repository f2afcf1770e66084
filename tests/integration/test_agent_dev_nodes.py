"""`provision dev up --nodes 2`: control loops and agents come up with the cluster, each with its own identity,
and down stops the pods too."""

from __future__ import annotations

import json
import subprocess
import time
import uuid
from pathlib import Path

import pytest

from provisioner.controlplane.agent.runtime import Runtime
from provisioner.dev import dev_down, dev_up

pytestmark = pytest.mark.integration


def test_dev_cluster_with_nodes_runs_a_deployment_and_down_stops_its_containers(tmp_path: Path) -> None:
    name = f"nodes-{uuid.uuid4().hex[:6]}"
    try:
        report = dev_up(name=name, masters=1, nodes=2, home=tmp_path)
        started = {a.process for a in report.actions}
        assert {"controller-manager-0", "scheduler-0", "agent-0", "agent-1"} <= started
        kubectl = ["/usr/bin/kubectl", f"--kubeconfig={report.kubeconfig}", f"--cache-dir={tmp_path / 'kube-cache'}"]
        subprocess.run([*kubectl, "create", "deployment", "web", "--image=nginx", "--replicas=3"], check=True,
                       capture_output=True, timeout=60)
        deadline = time.monotonic() + 90
        while True:
            pods = json.loads(subprocess.run([*kubectl, "get", "pods", "-o", "json"], check=True, capture_output=True,
                                             timeout=60).stdout)["items"]
            running = [p for p in pods if p["status"].get("phase") == "Running"]
            if len(running) == 3:
                break
            assert time.monotonic() < deadline, f"pods never all Running: {[p['status'] for p in pods]}"
            time.sleep(1)
        assert {p["spec"]["nodeName"] for p in running} == {"node-0", "node-1"}
        # Every loop runs as its own user, so these also prove the bootstrap RBAC covers what they do.
        subprocess.run([*kubectl, "rollout", "status", "deployment/web", "--timeout=90s"], check=True,
                       capture_output=True, timeout=120)
        logs = subprocess.run([*kubectl, "logs", running[0]["metadata"]["name"]], check=True, capture_output=True,
                              text=True, timeout=60).stdout
        assert "image 'nginx' is recorded, not run" in logs
        assert dev_up(name=name, home=tmp_path).changed is False
        roots = [tmp_path / name / "data" / f"agent-{j}" for j in range(2)]
        containers = [a for root in roots for a in Runtime(root).running()]
        assert len(containers) == 3
    finally:
        if (tmp_path / name / "cluster.json").exists():
            dev_down(name=name, home=tmp_path)
    assert not any(a.shim_alive() for a in containers)
    dev_down(name=name, purge=True, home=tmp_path)
