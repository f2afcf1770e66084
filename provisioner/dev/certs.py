"""The dev cluster's PKI: one CA signs etcd peers and servers, API serving certs and every client.

Issuing is idempotent (provisioner.pki reuses a certificate whose names are unchanged), so `dev up`
on a running cluster never swaps certificates under its processes.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from provisioner.dev.layout import Layout, node_name
from provisioner.pki import CertificateAuthority, IssuedCert

__all__ = ["ADMIN_GROUP", "ADMIN_USER", "CONTROLLER_MANAGER_USER", "KUBELET_CLIENT_USER", "SCHEDULER_USER",
           "DevCerts", "issue_dev_certs"]

ADMIN_USER = "admin"
ADMIN_GROUP = "system:masters"
# The users the bootstrap RBAC binds (provisioner.controlplane.apiserver.rbac); agents are system:node:<node>.
CONTROLLER_MANAGER_USER = "system:kube-controller-manager"
SCHEDULER_USER = "system:kube-scheduler"
KUBELET_CLIENT_USER = "system:kube-apiserver-kubelet-client"
_LOCAL_NAMES = ("localhost", "127.0.0.1")
_SERVICE_NAMES = ("kubernetes", "kubernetes.default", "kubernetes.default.svc")


@dataclass(frozen=True)
class DevCerts:
    ca_file: Path
    etcd_server: tuple[IssuedCert, ...]  # one per member, serves clients
    etcd_peer: tuple[IssuedCert, ...]  # one per member, both ends of peer TLS
    etcd_client: IssuedCert  # for health probes and etcdctl
    apiserver: IssuedCert  # serving cert, valid for the load balancer and every API server address
    apiserver_etcd_client: IssuedCert
    admin: IssuedCert
    lb_health_pem: Path  # certificate + key in one file, as HAProxy wants them
    controller_manager: IssuedCert
    scheduler: IssuedCert
    kubelet_client: IssuedCert  # the API server's identity towards agents (`pods/log`)
    agents: tuple[IssuedCert, ...] = ()  # one per node: the agent's log endpoint (serving) and its identity


def issue_dev_certs(layout: Layout, pki_dir: Path) -> DevCerts:
    ca = CertificateAuthority.load_or_create(pki_dir, common_name=f"provisioner-{layout.name}-ca")
    members = range(layout.masters)
    addresses = layout.master_addresses
    # etcd's HTTP/JSON gateway dials the member's own gRPC port with the serving certificate: it must be a client too.
    etcd_server = tuple(
        ca.issue(
            f"etcd-{i}-server", common_name=f"etcd-{i}", hosts=(addresses[i], *_LOCAL_NAMES), server=True, client=True
        )
        for i in members
    )
    # Peers dial out from 127.0.0.1 (the kernel's source address on lo) and etcd checks a peer's
    # certificate against the address it connects from, so peer certificates name it too.
    etcd_peer = tuple(
        ca.issue(
            f"etcd-{i}-peer", common_name=f"etcd-{i}", hosts=(addresses[i], *_LOCAL_NAMES), server=True, client=True
        )
        for i in members
    )
    lb_health = ca.issue("lb-health", common_name="system:lb-health", client=True)
    lb_health_pem = pki_dir / "lb-health.pem"
    pem = lb_health.cert_file.read_bytes() + lb_health.key_file.read_bytes()
    if not lb_health_pem.exists() or lb_health_pem.read_bytes() != pem:
        lb_health_pem.touch(mode=0o600)
        lb_health_pem.write_bytes(pem)
    return DevCerts(
        ca_file=ca.cert_file,
        etcd_server=etcd_server,
        etcd_peer=etcd_peer,
        etcd_client=ca.issue("etcd-client", common_name="etcd-client", client=True),
        apiserver=ca.issue(
            "apiserver",
            common_name="apiserver",
            server=True,
            hosts=(layout.lb_address, *addresses, *_LOCAL_NAMES, *_SERVICE_NAMES),
        ),
        apiserver_etcd_client=ca.issue("apiserver-etcd-client", common_name="apiserver", client=True),
        admin=ca.issue("admin", common_name=ADMIN_USER, organizations=(ADMIN_GROUP,), client=True),
        lb_health_pem=lb_health_pem,
        controller_manager=ca.issue("controller-manager", common_name=CONTROLLER_MANAGER_USER, client=True),
        scheduler=ca.issue("scheduler", common_name=SCHEDULER_USER, client=True),
        kubelet_client=ca.issue("apiserver-kubelet-client", common_name=KUBELET_CLIENT_USER, client=True),
        agents=tuple(
            ca.issue(f"agent-{j}", common_name=f"system:node:{node_name(j)}", organizations=("system:nodes",),
                     hosts=(address,), server=True, client=True)
            for j, address in enumerate(layout.node_addresses)),
    )
