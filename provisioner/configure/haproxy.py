"""haproxy.cfg for the API load balancer: TCP pass-through, so clients keep their own TLS session
with an API server (x509 client certificates still reach it), and HTTPS health checks on /readyz,
so a server that lost etcd leaves the rotation.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

__all__ = ["Backend", "HealthCheck", "render_haproxy_cfg"]


@dataclass(frozen=True)
class Backend:
    name: str
    address: str
    port: int


@dataclass(frozen=True)
class HealthCheck:
    """How HAProxy probes a backend: GET `path` over TLS, verified against `ca_file`,
    presenting `client_pem` (certificate and key in one file) because the API server refuses anonymous requests."""

    ca_file: Path
    client_pem: Path
    path: str = "/readyz"
    interval_ms: int = 1000
    fall: int = 2
    rise: int = 2


def render_haproxy_cfg(
    *,
    bind_address: str,
    port: int,
    backends: tuple[Backend, ...],
    check: HealthCheck,
    idle_timeout: str = "1h",
) -> str:
    """`idle_timeout` bounds how long a quiet connection (a watch between events) stays open."""
    if not backends:
        raise ValueError("a load balancer needs at least one backend")
    servers = "\n".join(f"    server {b.name} {b.address}:{b.port}" for b in backends)
    return f"""\
global
    log stderr format raw local0 info
    maxconn 4096

defaults
    mode tcp
    log global
    option tcplog
    option dontlognull
    timeout connect 5s
    timeout client {idle_timeout}
    timeout server {idle_timeout}
    timeout tunnel {idle_timeout}
    retries 3
    option redispatch

frontend apiserver
    bind {bind_address}:{port}
    default_backend apiservers

backend apiservers
    balance leastconn
    option httpchk
    http-check send meth GET uri {check.path} ver HTTP/1.1 hdr Host {bind_address}
    http-check expect status 200
    default-server check check-ssl verify required ca-file {check.ca_file} crt {check.client_pem} \
inter {check.interval_ms} fall {check.fall} rise {check.rise}
{servers}
"""
