"""The certificate set of a cluster on real machines, issued on the operator's machine from one CA.

Issuing is idempotent (provisioner.pki keeps a certificate whose names are unchanged), so rendering the
bundles again yields identical files and an unchanged bundle hash.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from provisioner.configure.topology import Host, Topology
from provisioner.dev.certs import KUBELET_CLIENT_USER
from provisioner.pki import CertificateAuthority, IssuedCert

__all__ = ["ADMIN_GROUP", "ClusterCerts", "MasterCerts", "issue_cluster_certs"]

ADMIN_GROUP = "system:masters"
_LOCAL_NAMES = ("localhost", "127.0.0.1")
_SERVICE_NAMES = ("kubernetes", "kubernetes.default", "kubernetes.default.svc")


@dataclass(frozen=True)
class MasterCerts:
    etcd_server: IssuedCert
    etcd_peer: IssuedCert


@dataclass(frozen=True)
class ClusterCerts:
    ca_file: Path
    masters: dict[str, MasterCerts]
    agents: dict[str, IssuedCert]  # per node: client (system:node:<name>) and log-endpoint server
    apiserver: IssuedCert
    apiserver_etcd_client: IssuedCert
    etcd_client: IssuedCert  # etcdctl health checks
    controllers: IssuedCert
    scheduler: IssuedCert
    lb_health: IssuedCert  # HAProxy's HTTPS health checks on /readyz
    kubelet_client: IssuedCert  # what the API server presents to agents' log endpoints (`kubectl logs`)
    admin: IssuedCert


def _member(ca: CertificateAuthority, host: Host, kind: str) -> IssuedCert:
    # etcd checks a peer's certificate against the address it dials from; the gateway dials itself as a client.
    return ca.issue(f"etcd-{host.name}-{kind}", common_name=host.name, hosts=(host.address, *_LOCAL_NAMES),
                    server=True, client=True)


def issue_cluster_certs(topology: Topology, pki_dir: Path) -> ClusterCerts:
    ca = CertificateAuthority.load_or_create(pki_dir, common_name=f"provisioner-{topology.cluster}-ca")
    vip = (topology.vip.address,) if topology.vip else ()
    serving_hosts = (topology.endpoint_host, *vip, *(m.address for m in topology.masters), *_LOCAL_NAMES,
                     *_SERVICE_NAMES)
    return ClusterCerts(
        ca_file=ca.cert_file,
        masters={m.name: MasterCerts(etcd_server=_member(ca, m, "server"), etcd_peer=_member(ca, m, "peer"))
                 for m in topology.masters},
        agents={n.name: ca.issue(f"agent-{n.name}", common_name=f"system:node:{n.name}",
                                 organizations=("system:nodes",), hosts=(n.address,), server=True, client=True)
                for n in topology.nodes},
        apiserver=ca.issue("apiserver", common_name="apiserver", server=True,
                           hosts=tuple(dict.fromkeys(serving_hosts))),
        apiserver_etcd_client=ca.issue("apiserver-etcd-client", common_name="apiserver", client=True),
        etcd_client=ca.issue("etcd-client", common_name="etcd-client", client=True),
        controllers=ca.issue("controllers", common_name="system:kube-controller-manager", client=True),
        scheduler=ca.issue("scheduler", common_name="system:kube-scheduler", client=True),
        lb_health=ca.issue("lb-health", common_name="system:lb-health", client=True),
        kubelet_client=ca.issue("apiserver-kubelet-client", common_name=KUBELET_CLIENT_USER, client=True),
        admin=ca.issue("admin", common_name="admin", organizations=(ADMIN_GROUP,), client=True),
    )
