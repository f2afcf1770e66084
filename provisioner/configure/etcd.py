"""The command line of one etcd member: static bootstrap, mutual TLS for peers and clients.

The same flags serve a dev member on a loopback address and a member on a real master, so
they are built from plain values here and nowhere else.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

__all__ = ["EtcdMember", "EtcdTls", "etcd_flags", "initial_cluster"]


@dataclass(frozen=True)
class EtcdMember:
    name: str
    address: str
    client_port: int = 2379
    peer_port: int = 2380

    @property
    def client_url(self) -> str:
        return f"https://{self.address}:{self.client_port}"

    @property
    def peer_url(self) -> str:
        return f"https://{self.address}:{self.peer_port}"


@dataclass(frozen=True)
class EtcdTls:
    """One member's certificates: the same CA signs peers and clients."""

    ca_file: Path
    server_cert_file: Path
    server_key_file: Path
    peer_cert_file: Path
    peer_key_file: Path


def initial_cluster(members: tuple[EtcdMember, ...]) -> str:
    return ",".join(f"{m.name}={m.peer_url}" for m in members)


def etcd_flags(
    member: EtcdMember,
    *,
    members: tuple[EtcdMember, ...],
    tls: EtcdTls,
    data_dir: Path,
    cluster_token: str,
    compaction_retention: str = "5m",
) -> list[str]:
    """Flags for `etcd` (3.4). Periodic compaction keeps transaction throughput from decaying with revisions;
    pre-vote keeps a member that rejoins from forcing a needless election."""
    if member not in members:
        raise ValueError(f"member {member.name} is not in the cluster {initial_cluster(members)}")
    return [
        f"--name={member.name}",
        f"--data-dir={data_dir}",
        f"--listen-client-urls={member.client_url}",
        f"--advertise-client-urls={member.client_url}",
        f"--listen-peer-urls={member.peer_url}",
        f"--initial-advertise-peer-urls={member.peer_url}",
        f"--initial-cluster={initial_cluster(members)}",
        "--initial-cluster-state=new",
        f"--initial-cluster-token={cluster_token}",
        "--client-cert-auth=true",
        f"--trusted-ca-file={tls.ca_file}",
        f"--cert-file={tls.server_cert_file}",
        f"--key-file={tls.server_key_file}",
        "--peer-client-cert-auth=true",
        f"--peer-trusted-ca-file={tls.ca_file}",
        f"--peer-cert-file={tls.peer_cert_file}",
        f"--peer-key-file={tls.peer_key_file}",
        "--auto-compaction-mode=periodic",
        f"--auto-compaction-retention={compaction_retention}",
        "--pre-vote=true",
        "--logger=zap",
        "--log-outputs=stderr",
    ]
