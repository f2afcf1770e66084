"""The dev cluster's PKI: the identities every cluster has (provisioner.identities), for loopback addresses.

Issuing is idempotent (provisioner.pki reuses a certificate whose names are unchanged), so `dev up`
on a running cluster never swaps certificates under its processes.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from provisioner.dev.layout import Layout, node_name
from provisioner.identities import ClientIdentities, issue_agent, issue_apiserver, issue_clients, issue_etcd_member
from provisioner.pki import CertificateAuthority, IssuedCert

__all__ = ["DevCerts", "issue_dev_certs"]


@dataclass(frozen=True)
class DevCerts:
    ca_file: Path
    etcd_server: tuple[IssuedCert, ...]  # one per member, serves clients
    etcd_peer: tuple[IssuedCert, ...]  # one per member, both ends of peer TLS
    apiserver: IssuedCert  # serving cert, valid for the load balancer and every API server address
    clients: ClientIdentities
    lb_health_pem: Path  # clients.lb_health's certificate + key in one file, as HAProxy wants them
    agents: tuple[IssuedCert, ...] = ()  # one per node: the agent's log endpoint (serving) and its identity


def issue_dev_certs(layout: Layout, pki_dir: Path) -> DevCerts:
    ca = CertificateAuthority.load_or_create(pki_dir, common_name=f"provisioner-{layout.name}-ca")
    addresses = layout.master_addresses
    clients = issue_clients(ca)
    lb_health_pem = pki_dir / "lb-health.pem"
    pem = clients.lb_health.cert_file.read_bytes() + clients.lb_health.key_file.read_bytes()
    if not lb_health_pem.exists() or lb_health_pem.read_bytes() != pem:
        lb_health_pem.touch(mode=0o600)
        lb_health_pem.write_bytes(pem)
    return DevCerts(
        ca_file=ca.cert_file,
        etcd_server=tuple(issue_etcd_member(ca, f"etcd-{i}", address, "server") for i, address in enumerate(addresses)),
        etcd_peer=tuple(issue_etcd_member(ca, f"etcd-{i}", address, "peer") for i, address in enumerate(addresses)),
        apiserver=issue_apiserver(ca, (layout.lb_address, *addresses)),
        clients=clients,
        lb_health_pem=lb_health_pem,
        agents=tuple(issue_agent(ca, node_name(j), address) for j, address in enumerate(layout.node_addresses)),
    )
