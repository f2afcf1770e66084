"""The certificate set of a cluster on real machines, issued on the operator's machine from one CA.

Issuing is idempotent (provisioner.pki keeps a certificate whose names are unchanged), so rendering the
bundles again yields identical files and an unchanged bundle hash.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from provisioner.configure.topology import Topology
from provisioner.identities import ClientIdentities, issue_agent, issue_apiserver, issue_clients, issue_etcd_member
from provisioner.pki import CertificateAuthority, IssuedCert

__all__ = ["ClusterCerts", "MasterCerts", "issue_cluster_certs"]


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
    clients: ClientIdentities


def issue_cluster_certs(topology: Topology, pki_dir: Path) -> ClusterCerts:
    ca = CertificateAuthority.load_or_create(pki_dir, common_name=f"provisioner-{topology.cluster}-ca")
    vip = (topology.vip.address,) if topology.vip else ()
    return ClusterCerts(
        ca_file=ca.cert_file,
        masters={m.name: MasterCerts(etcd_server=issue_etcd_member(ca, f"etcd-{m.name}", m.address, "server"),
                                     etcd_peer=issue_etcd_member(ca, f"etcd-{m.name}", m.address, "peer"))
                 for m in topology.masters},
        agents={n.name: issue_agent(ca, n.name, n.address) for n in topology.nodes},
        apiserver=issue_apiserver(ca, (topology.endpoint_host, *vip, *(m.address for m in topology.masters))),
        clients=issue_clients(ca),
    )
