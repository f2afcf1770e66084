"""Real etcd members and API server processes for the API server's own integration tests.

Each process gets a free port on its own loopback address and is stopped by PID at teardown,
even when the test fails.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from provisioner.controlplane.apiserver.config import ApiServerConfig
from provisioner.pki import CertificateAuthority


def free_port(host: str) -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def wait_for_port(host: str, port: int, *, timeout: float = 30.0, proc: subprocess.Popen | None = None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"process {proc.args} exited with {proc.returncode}")
        with contextlib.suppress(OSError), socket.create_connection((host, port), timeout=0.5):
            return
        time.sleep(0.1)
    raise TimeoutError(f"{host}:{port} did not open")


def stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@dataclass
class EtcdMember:
    name: str
    host: str
    client_port: int
    peer_port: int
    data_dir: Path
    proc: subprocess.Popen | None = None

    @property
    def endpoint(self) -> str:
        return f"{self.host}:{self.client_port}"


@dataclass
class Cluster:
    """A CA, `n` etcd members and any number of API servers under `root`."""

    root: Path
    hosts: tuple[str, ...]
    ca: CertificateAuthority = field(init=False)
    members: list[EtcdMember] = field(default_factory=list)
    apiservers: dict[str, subprocess.Popen] = field(default_factory=dict)
    configs: dict[str, ApiServerConfig] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.ca = CertificateAuthority.load_or_create(self.root / "pki")
        all_hosts = (*self.hosts, "localhost", "127.0.0.1")
        self.etcd_server = self.ca.issue("etcd-server", common_name="etcd", hosts=all_hosts, server=True, client=True)
        self.etcd_client = self.ca.issue("etcd-client", common_name="apiserver", client=True)
        self.serving = self.ca.issue("apiserver", common_name="apiserver", hosts=all_hosts, server=True)
        self.admin = self.ca.issue("admin", common_name="admin", organizations=("system:masters",), client=True)
        for i, host in enumerate(self.hosts):
            self.members.append(EtcdMember(f"m{i}", host, free_port(host), free_port(host), self.root / f"etcd-{i}"))

    def _etcd_args(self, m: EtcdMember) -> list[str]:
        peers = ",".join(f"{x.name}=https://{x.host}:{x.peer_port}" for x in self.members)
        tls = [f"--trusted-ca-file={self.ca.cert_file}", f"--cert-file={self.etcd_server.cert_file}",
               f"--key-file={self.etcd_server.key_file}", "--client-cert-auth",
               f"--peer-trusted-ca-file={self.ca.cert_file}", f"--peer-cert-file={self.etcd_server.cert_file}",
               f"--peer-key-file={self.etcd_server.key_file}", "--peer-client-cert-auth"]
        return ["etcd", f"--name={m.name}", f"--data-dir={m.data_dir}",
                f"--listen-client-urls=https://{m.host}:{m.client_port}",
                f"--advertise-client-urls=https://{m.host}:{m.client_port}",
                f"--listen-peer-urls=https://{m.host}:{m.peer_port}",
                f"--initial-advertise-peer-urls=https://{m.host}:{m.peer_port}",
                f"--initial-cluster={peers}", "--initial-cluster-state=new", "--initial-cluster-token=t",
                "--pre-vote=true", "--logger=zap", "--log-level=error", "--auto-compaction-retention=1h",
                *tls]

    def start_etcd(self, m: EtcdMember) -> None:
        log = (self.root / f"{m.name}.log").open("ab")
        m.proc = subprocess.Popen(self._etcd_args(m), stdout=log, stderr=log)

    def start_all_etcd(self) -> None:
        for m in self.members:
            self.start_etcd(m)
        for m in self.members:
            wait_for_port(m.host, m.client_port, proc=m.proc)

    def stop_etcd(self, m: EtcdMember) -> None:
        if m.proc is not None:
            stop(m.proc)

    def apiserver_config(self, name: str, host: str) -> ApiServerConfig:
        return ApiServerConfig(
            bind_address=host, port=free_port(host), tls_cert_file=self.serving.cert_file,
            tls_key_file=self.serving.key_file, client_ca_file=self.ca.cert_file,
            etcd_endpoints=tuple(m.endpoint for m in self.members), etcd_ca_file=self.ca.cert_file,
            etcd_cert_file=self.etcd_client.cert_file, etcd_key_file=self.etcd_client.key_file, server_name=name,
        )

    def start_apiserver(self, name: str, host: str) -> ApiServerConfig:
        config = self.configs.get(name) or self.apiserver_config(name, host)
        self.configs[name] = config
        path = self.root / f"{name}.yaml"
        config.dump(path)
        log = (self.root / f"{name}.log").open("ab")
        proc = subprocess.Popen([sys.executable, "-m", "provisioner.controlplane.apiserver", "--config", str(path)],
                                stdout=log, stderr=log, env={**os.environ, "PYTHONUNBUFFERED": "1"})
        self.apiservers[name] = proc
        wait_for_port(config.bind_address, config.port, proc=proc)
        return config

    def stop_apiserver(self, name: str) -> None:
        stop(self.apiservers.pop(name))

    def url(self, name: str) -> str:
        c = self.configs[name]
        return f"https://{c.bind_address}:{c.port}"

    def kubeconfig(self, name: str) -> Path:
        path = self.root / f"kubeconfig-{name}"
        path.write_text(
            "apiVersion: v1\nkind: Config\n"
            f"clusters:\n- name: c\n  cluster:\n    server: {self.url(name)}\n"
            f"    certificate-authority: {self.ca.cert_file}\n"
            f"users:\n- name: admin\n  user:\n    client-certificate: {self.admin.cert_file}\n"
            f"    client-key: {self.admin.key_file}\n"
            "contexts:\n- name: c\n  context:\n    cluster: c\n    user: admin\n"
            "current-context: c\n"
        )
        return path

    def close(self) -> None:
        for name in list(self.apiservers):
            self.stop_apiserver(name)
        for m in self.members:
            self.stop_etcd(m)


@contextlib.contextmanager
def cluster(root: Path, hosts: tuple[str, ...]) -> Iterator[Cluster]:
    c = Cluster(root, hosts)
    try:
        c.start_all_etcd()
        yield c
    finally:
        c.close()
