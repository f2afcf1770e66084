"""Shared integration fixtures: one real 3-master dev cluster per test session, and kubectl against it.

`dev_cluster` runs `provision dev up --masters 3` (the importable function; the servers are real
processes) in a temporary PROVISIONER_HOME under a unique name, and always `down --purge`s it at the
end, even when a test or the start-up fails. Tests that kill a process must restore it with
`restart()` before they finish, so later tests see a whole cluster. This is the one way tests start
a cluster: tests of the etcd store use its etcd members (with the API servers' etcd client
certificate) under key prefixes of their own.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import urllib3
from kubernetes import client, config

from provisioner.dev import ProcessStatus, UpReport, dev_down, dev_status, dev_up
from provisioner.dev.layout import APISERVER_PORT, ETCD_CLIENT_PORT

KUBECTL = "/usr/bin/kubectl"


@dataclass(frozen=True)
class Kubectl:
    """Runs the real kubectl with its own discovery cache, so a previous cluster's answers never leak in."""

    kubeconfig: Path
    cache_dir: Path

    def __call__(
        self,
        *args: str,
        stdin: str | None = None,
        kubeconfig: Path | None = None,
        check: bool = False,
        timeout: float = 120,
    ) -> subprocess.CompletedProcess[str]:
        argv = [KUBECTL, f"--kubeconfig={kubeconfig or self.kubeconfig}", f"--cache-dir={self.cache_dir}", *args]
        result = subprocess.run(argv, input=stdin, capture_output=True, text=True, timeout=timeout, check=False)
        if check and result.returncode != 0:
            raise AssertionError(f"{' '.join(args)} exited {result.returncode}:\n{result.stdout}\n{result.stderr}")
        return result


@dataclass(frozen=True)
class DevCluster:
    name: str
    home: Path
    kubeconfig: Path  # admin (CN=admin, O=system:masters)
    server: str  # https URL through HAProxy
    apiservers: tuple[str, ...]  # https URL of each API server, apiserver-0 first
    etcd_endpoints: tuple[str, ...]  # "host:port" of each etcd member, etcd-0 first
    ca_file: Path
    admin_cert: Path
    admin_key: Path
    etcd_client_cert: Path  # the API servers' client certificate for etcd
    etcd_client_key: Path

    def process(self, name: str) -> ProcessStatus:
        """The recorded process `name` ("apiserver-1", "etcd-0", "haproxy") as `provision dev status` sees it."""
        found = [p for p in dev_status(name=self.name, home=self.home).processes if p.name == name]
        assert found, f"no process {name!r} in dev cluster {self.name}"
        return found[0]

    def kill(self, name: str, *, sig: signal.Signals = signal.SIGKILL) -> int:
        """Send `sig` to one recorded process and wait until it is gone; returns its PID."""
        process = self.process(name)
        assert process.alive and process.pid is not None, f"{name} is not running"
        os.kill(process.pid, sig)
        deadline = time.monotonic() + 30
        while self.process(name).alive:
            assert time.monotonic() < deadline, f"{name} (pid {process.pid}) survived {sig.name}"
            time.sleep(0.05)
        return process.pid

    def restart(self) -> UpReport:
        """`provision dev up` again: starts whatever died and waits until everything is healthy."""
        return dev_up(name=self.name, home=self.home)


@pytest.fixture(scope="session")
def dev_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DevCluster]:
    home = tmp_path_factory.mktemp("provisioner-home")
    name = f"it-{uuid.uuid4().hex[:8]}"
    try:
        report = dev_up(name=name, masters=3, home=home)
        pki = home / name / "pki"
        yield DevCluster(
            name=name,
            home=home,
            kubeconfig=report.kubeconfig,
            server=report.server,
            apiservers=tuple(f"https://{a}:{APISERVER_PORT}" for a in report.layout.master_addresses),
            etcd_endpoints=tuple(f"{a}:{ETCD_CLIENT_PORT}" for a in report.layout.master_addresses),
            ca_file=pki / "ca.crt",
            admin_cert=pki / "admin.crt",
            admin_key=pki / "admin.key",
            etcd_client_cert=pki / "apiserver-etcd-client.crt",
            etcd_client_key=pki / "apiserver-etcd-client.key",
        )
    finally:
        if (home / name / "cluster.json").exists():
            dev_down(name=name, purge=True, home=home)


@pytest.fixture(scope="session")
def kubectl(dev_cluster: DevCluster, tmp_path_factory: pytest.TempPathFactory) -> Kubectl:
    return Kubectl(kubeconfig=dev_cluster.kubeconfig, cache_dir=tmp_path_factory.mktemp("kubectl-cache"))


@pytest.fixture(scope="module")
def http(dev_cluster: DevCluster) -> Iterator[urllib3.PoolManager]:
    """Raw HTTPS as the admin, for requests kubectl and the client would never send (bad bodies, watch params)."""
    pool = urllib3.PoolManager(ca_certs=str(dev_cluster.ca_file), cert_file=str(dev_cluster.admin_cert),
                               key_file=str(dev_cluster.admin_key), cert_reqs="CERT_REQUIRED")
    yield pool
    pool.clear()


@pytest.fixture(scope="module")
def api(dev_cluster: DevCluster) -> Iterator[client.ApiClient]:
    """The official Python client as the admin."""
    api_client = config.new_client_from_config(str(dev_cluster.kubeconfig))
    yield api_client
    api_client.close()
