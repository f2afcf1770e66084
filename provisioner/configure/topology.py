"""Who is who in a cluster on real machines: the masters, the nodes, their addresses and the API endpoint.

Everything rendered for a host (certificates, flags, configs, units, inventory) is a pure function of a
`Topology`, so the operator's machine can render every host's configuration before touching any of them.
"""

from __future__ import annotations

from dataclasses import dataclass

from provisioner.configure.etcd import EtcdMember

__all__ = ["API_PORT", "ETCD_CLIENT_PORT", "ETCD_PEER_PORT", "Host", "Topology", "VirtualIp"]

API_PORT = 6443
ETCD_CLIENT_PORT = 2379
ETCD_PEER_PORT = 2380


@dataclass(frozen=True)
class Host:
    """One machine as configuration sees it; `address` is where the other machines reach it."""

    name: str
    role: str  # "master" or "node"
    address: str


@dataclass(frozen=True)
class VirtualIp:
    """The API's virtual IP on bare metal: keepalived keeps `address` on one healthy master, where HAProxy
    answers on `port` for every master's API server."""

    address: str
    port: int

    @property
    def url(self) -> str:
        return f"https://{self.address}:{self.port}"


@dataclass(frozen=True)
class Topology:
    cluster: str
    masters: tuple[Host, ...]
    nodes: tuple[Host, ...]
    endpoint_host: str  # what the operator's kubeconfig names (certificates must be valid for it)
    vip: VirtualIp | None = None

    @property
    def hosts(self) -> tuple[Host, ...]:
        return (*self.masters, *self.nodes)

    @property
    def etcd_members(self) -> tuple[EtcdMember, ...]:
        return tuple(EtcdMember(name=m.name, address=m.address, client_port=ETCD_CLIENT_PORT,
                                peer_port=ETCD_PEER_PORT) for m in self.masters)

    @property
    def etcd_endpoints(self) -> tuple[str, ...]:
        return tuple(f"{m.address}:{m.client_port}" for m in self.etcd_members)

    def host(self, name: str) -> Host:
        return next(h for h in self.hosts if h.name == name)
