"""HAProxy configuration for one balancer, rendered from a frozen value so it can be read and tested alone.

Every member gets an active health check (TCP connect, or `GET <health_path>` for http balancers): a
member that fails two checks stops receiving traffic until one check passes again. Members start UP (as
HAProxy assumes) and a failed attempt is retried on another member (`redispatch`); http balancers also
retry a request whose connection closed before any response, which is how a forwarded VM port whose
service is not listening yet looks (QEMU's user-mode network accepts first, then resets). The admin socket lets
the driver read each member's check status (`show stat`).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

__all__ = ["ALGORITHMS", "BalancerConfig", "render"]

# libcloud Algorithm constant name -> HAProxy `balance` keyword
ALGORITHMS = {
    "ROUND_ROBIN": "roundrobin",
    "LEAST_CONNECTIONS": "leastconn",
    "RANDOM": "random",
    "PERSISTENT_IP": "source",
}


@dataclass(frozen=True)
class BalancerConfig:
    name: str
    address: str
    port: int
    protocol: str  # "tcp" or "http"
    algorithm: str  # an HAProxy `balance` keyword (a value of ALGORITHMS)
    members: tuple[tuple[str, int], ...]
    admin_socket: Path
    health_path: str = "/"
    check_interval_ms: int = 1000


def render(config: BalancerConfig) -> str:
    check = f"check inter {config.check_interval_ms} fall 2 rise 1"
    lines = [
        "global",
        "    maxconn 4096",
        "    hard-stop-after 5s",
        f"    stats socket {config.admin_socket} mode 600 level admin",
        "",
        "defaults",
        f"    mode {config.protocol}",
        "    timeout connect 5s",
        "    timeout client 1h",
        "    timeout server 1h",
        "    timeout check 2s",
        "    retries 3",
        "    option redispatch",
        "",
        f"frontend {config.name}",
        f"    bind {config.address}:{config.port}",
        f"    default_backend {config.name}-members",
        "",
        f"backend {config.name}-members",
        f"    balance {config.algorithm}",
    ]
    if config.protocol == "http":
        lines.append(f"    option httpchk GET {config.health_path}")
        lines.append("    retry-on conn-failure empty-response response-timeout")
    lines += [f"    server {ip}:{port} {ip}:{port} {check}" for ip, port in config.members]
    return "\n".join(lines) + "\n"
