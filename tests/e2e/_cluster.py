"""Helpers for `provision up` end-to-end tests: a private PROVISIONER_HOME, kubectl through the endpoint,
polling, and a teardown that destroys whatever a test created even when it failed half-way."""

from __future__ import annotations

import json
import os
import subprocess
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

from provisioner.cluster.machines import open_cloud
from provisioner.cluster.ops import down
from provisioner.cluster.state import cluster_files
from provisioner.infra.drivers import register_drivers
from provisioner.infra.haproxy import HaproxyLBDriver
from provisioner.infra.local import LocalNodeDriver
from provisioner.spec import ClusterSpec

KUBECTL = "/usr/bin/kubectl"
T = TypeVar("T")


@contextmanager
def provisioner_home(path: Path) -> Iterator[Path]:
    """Point every `provision` call of this process (and its children) at `path`."""
    before = os.environ.get("PROVISIONER_HOME")
    os.environ["PROVISIONER_HOME"] = str(path)
    try:
        yield path
    finally:
        if before is None:
            del os.environ["PROVISIONER_HOME"]
        else:
            os.environ["PROVISIONER_HOME"] = before


def local_drivers(home: Path) -> tuple[LocalNodeDriver, HaproxyLBDriver]:
    register_drivers()
    return LocalNodeDriver(ex_state_dir=home / "local-cloud"), HaproxyLBDriver(ex_state_dir=home / "local-cloud")


@contextmanager
def cluster_home(path: Path, spec: ClusterSpec) -> Iterator[Path]:
    """PROVISIONER_HOME at `path` for one module's cluster; at the end, even on failure, `down` when the cluster got
    that far, then remove any VM or balancer still listed."""
    with provisioner_home(path):
        try:
            yield path
        finally:
            _destroy_everything(path, spec)


def _destroy_everything(home: Path, spec: ClusterSpec) -> None:
    if cluster_files(spec.name).state_file.is_file():
        try:
            down(spec.name)
        except Exception as e:  # the listing below still cleans up
            print(f"down failed during teardown: {e}")
    compute, balancers = local_drivers(home)
    for balancer in balancers.list_balancers():
        balancers.destroy_balancer(balancer)
    for node in compute.list_nodes():
        compute.destroy_node(node)


def kubectl(kubeconfig: Path, cache: Path, *args: str, check: bool = True, timeout: float = 90,
            full: bool = False) -> Any:
    """stdout of the real kubectl (the whole CompletedProcess with `full`)."""
    done = subprocess.run([KUBECTL, f"--kubeconfig={kubeconfig}", f"--cache-dir={cache}", "--request-timeout=60s",
                           *args], capture_output=True, text=True, timeout=timeout)
    if check and done.returncode != 0:
        raise AssertionError(f"kubectl {' '.join(args)} exited {done.returncode}: {done.stderr}")
    return done if full else done.stdout


def ready_nodes(kubeconfig: Path, cache: Path) -> list[str]:
    items = json.loads(kubectl(kubeconfig, cache, "get", "nodes", "-o", "json"))["items"]
    return sorted(n["metadata"]["name"] for n in items
                  if any(c["type"] == "Ready" and c["status"] == "True" for c in n["status"].get("conditions", [])))


def eventually(probe: Callable[[], T], *, timeout: float, what: str) -> T:
    """Poll until `probe` returns something truthy; exceptions count as 'not yet'."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        try:
            result = probe()
            if result:
                return result
            last = result
        except Exception as e:
            last = e
        time.sleep(2)
    raise AssertionError(f"timed out waiting for {what}; last: {last}")


def no_leftover_processes(home: Path) -> list[str]:
    """Command lines of live processes that still mention `home` (QEMU, vde_switch, HAProxy, ssh masters)."""
    found = []
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit():
            try:
                cmdline = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            except OSError:
                continue
            if str(home) in cmdline:
                found.append(cmdline)
    return found


def cloud_of(spec: ClusterSpec) -> Any:
    return open_cloud(spec)
