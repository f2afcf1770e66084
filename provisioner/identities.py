"""Who is who in every cluster, dev or on machines: the users the bootstrap RBAC binds, and the certificates
that prove them, issued from the cluster CA.

`provision dev` and `provision up` issue the same identities; only the addresses differ, so both build their
certificate sets from these functions (provisioner.pki keeps a certificate whose names are unchanged, so issuing
again changes nothing).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from provisioner.pki import CertificateAuthority, IssuedCert

__all__ = ["ADMIN_GROUP", "ADMIN_USER", "CONTROLLER_MANAGER_USER", "KUBELET_CLIENT_USER", "LOCAL_NAMES",
           "NODES_GROUP", "SCHEDULER_USER", "ClientIdentities", "issue_agent", "issue_apiserver", "issue_clients",
           "issue_etcd_member"]

ADMIN_USER = "admin"
ADMIN_GROUP = "system:masters"
# Bound by the bootstrap RBAC (provisioner.controlplane.apiserver.rbac); agents are system:node:<node>.
CONTROLLER_MANAGER_USER = "system:kube-controller-manager"
SCHEDULER_USER = "system:kube-scheduler"
KUBELET_CLIENT_USER = "system:kube-apiserver-kubelet-client"
NODES_GROUP = "system:nodes"
LOCAL_NAMES = ("localhost", "127.0.0.1")
_SERVICE_NAMES = ("kubernetes", "kubernetes.default", "kubernetes.default.svc")


@dataclass(frozen=True)
class ClientIdentities:
    etcd_client: IssuedCert  # etcdctl and health probes
    apiserver_etcd_client: IssuedCert  # the API servers towards etcd
    admin: IssuedCert
    controller_manager: IssuedCert
    scheduler: IssuedCert
    lb_health: IssuedCert  # HAProxy's HTTPS health checks on /readyz
    kubelet_client: IssuedCert  # the API servers towards agents' log endpoints (`kubectl logs`)


def issue_clients(ca: CertificateAuthority) -> ClientIdentities:
    return ClientIdentities(
        etcd_client=ca.issue("etcd-client", common_name="etcd-client", client=True),
        apiserver_etcd_client=ca.issue("apiserver-etcd-client", common_name="apiserver", client=True),
        admin=ca.issue("admin", common_name=ADMIN_USER, organizations=(ADMIN_GROUP,), client=True),
        controller_manager=ca.issue("controller-manager", common_name=CONTROLLER_MANAGER_USER, client=True),
        scheduler=ca.issue("scheduler", common_name=SCHEDULER_USER, client=True),
        lb_health=ca.issue("lb-health", common_name="system:lb-health", client=True),
        kubelet_client=ca.issue("apiserver-kubelet-client", common_name=KUBELET_CLIENT_USER, client=True),
    )


def issue_apiserver(ca: CertificateAuthority, addresses: Iterable[str]) -> IssuedCert:
    """The API servers' serving certificate: every address clients dial, local names, the in-cluster names."""
    hosts = tuple(dict.fromkeys((*addresses, *LOCAL_NAMES, *_SERVICE_NAMES)))
    return ca.issue("apiserver", common_name="apiserver", server=True, hosts=hosts)


def issue_etcd_member(ca: CertificateAuthority, member: str, address: str, kind: str) -> IssuedCert:
    """A member's `kind` ("server" or "peer") certificate. etcd checks a peer's certificate against the address
    it dials from (127.0.0.1 on loopback), and its JSON gateway dials the member itself: server and client both."""
    return ca.issue(f"{member}-{kind}", common_name=member, hosts=(address, *LOCAL_NAMES), server=True, client=True)


def issue_agent(ca: CertificateAuthority, node: str, address: str) -> IssuedCert:
    """A node agent's identity towards the API and its log endpoint's serving certificate, in one."""
    return ca.issue(f"agent-{node}", common_name=f"system:node:{node}", organizations=(NODES_GROUP,),
                    hosts=(address,), server=True, client=True)
