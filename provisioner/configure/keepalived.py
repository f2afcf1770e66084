"""keepalived.conf for the API's virtual IP on bare metal, the way kubeadm's HA guide does it.

One VRRP instance per cluster over unicast between the masters' private addresses (no multicast needed on the
network, adverts accepted only from the listed peers; a lone master has no peer and keepalived falls back
to multicast, which nobody answers), priority by master index, and a check script: a master
whose local API server stops answering /readyz goes to FAULT and gives the address up, so the virtual IP always
sits on a master that can serve. The address is added as a /32 and announced by gratuitous ARP.

The one thing the operator's machine cannot know is the name of the interface holding a master's address, so
the config includes a one-line file (`interface NAME`) that the unit writes on the host before keepalived starts.
"""

from __future__ import annotations

import shlex
import zlib
from dataclasses import dataclass

__all__ = ["VrrpInstance", "render_keepalived_conf", "virtual_router_id"]


@dataclass(frozen=True)
class VrrpInstance:
    cluster: str
    address: str  # this master's private address: where its adverts come from
    peers: tuple[str, ...]  # the other masters' private addresses
    vip: str
    priority: int  # 1-254; the highest healthy master holds the address
    check: tuple[str, ...]  # argv that exits 0 while the local API server is ready
    interface_file: str  # written on the host: `interface NAME`
    # Like the node-local HAProxy's checks (bundle.py): on busy TCG masters /readyz fails now and then (etcd
    # deadlines), and rise 2 / fall 2 left three masters all in FAULT, the address held by none, for minutes.
    check_interval_s: int = 5
    check_timeout_s: int = 20  # a TLS handshake on a busy TCG guest takes seconds
    check_fall: int = 3
    check_rise: int = 1


def virtual_router_id(cluster: str) -> int:
    """1-255, stable per cluster, so two clusters' instances on one network rarely share an id."""
    return 1 + zlib.crc32(cluster.encode()) % 255


def render_keepalived_conf(instance: VrrpInstance) -> str:
    if not 1 <= instance.priority <= 254:
        raise ValueError(f"VRRP priority must be 1-254, got {instance.priority}")
    unicast = ""
    if instance.peers:
        peers = "".join(f"        {p}\n" for p in instance.peers)
        unicast = f"    unicast_src_ip {instance.address}\n    unicast_peer {{\n{peers}    }}\n    check_unicast_src\n"
    return f"""\
global_defs {{
    router_id {instance.cluster}-{instance.address}
    script_user root
    enable_script_security
    max_auto_priority -1
}}

vrrp_script api_ready {{
    script "{shlex.join(instance.check)}"
    interval {instance.check_interval_s}
    timeout {instance.check_timeout_s}
    fall {instance.check_fall}
    rise {instance.check_rise}
}}

vrrp_instance api {{
    state BACKUP
    include {instance.interface_file}
    virtual_router_id {virtual_router_id(instance.cluster)}
    priority {instance.priority}
    advert_int 1
{unicast}    virtual_ipaddress {{
        {instance.vip}/32
    }}
    track_script {{
        api_ready
    }}
}}
"""
