"""Health probes over mutual TLS: etcd's /health and maintenance status, the API server's /readyz.

Each probe answers with a reason string when unhealthy and None when healthy, so callers can show
the operator why they are still waiting.
"""

from __future__ import annotations

import json
import ssl
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from provisioner.pki import IssuedCert

__all__ = ["EtcdMemberStatus", "etcd_health", "etcd_member_status", "https_ready"]


def _request(
    url: str, *, ca_file: Path, client: IssuedCert, body: bytes | None = None, timeout: float = 2.0
) -> tuple[int, bytes]:
    context = ssl.create_default_context(cafile=str(ca_file))
    context.load_cert_chain(str(client.cert_file), str(client.key_file))
    request = urllib.request.Request(url, data=body, method="POST" if body is not None else "GET")
    try:
        with urllib.request.urlopen(request, context=context, timeout=timeout) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


def https_ready(url: str, *, ca_file: Path, client: IssuedCert) -> str | None:
    """None when GET `url` answers 200."""
    try:
        status, body = _request(url, ca_file=ca_file, client=client)
    except (OSError, ssl.SSLError) as e:
        return f"{url}: {getattr(e, 'reason', e)}"
    return None if status == 200 else f"{url}: HTTP {status} {body[:200].decode(errors='replace')}"


def etcd_health(client_url: str, *, ca_file: Path, client: IssuedCert) -> str | None:
    """None when the member reports itself healthy (it has a leader and a quorum)."""
    try:
        status, body = _request(f"{client_url}/health", ca_file=ca_file, client=client)
        health = json.loads(body).get("health") if status == 200 else None
    except (OSError, ssl.SSLError, ValueError) as e:
        return f"{client_url}: {getattr(e, 'reason', e)}"
    return None if health == "true" else f"{client_url}: HTTP {status} {body[:200].decode(errors='replace')}"


@dataclass(frozen=True)
class EtcdMemberStatus:
    member_id: str
    leader_id: str
    revision: int
    db_size: int

    @property
    def is_leader(self) -> bool:
        return self.member_id == self.leader_id


def etcd_member_status(client_url: str, *, ca_file: Path, client: IssuedCert) -> EtcdMemberStatus | str:
    """The member's view of the cluster (through etcd's gRPC gateway), or why it could not be read."""
    try:
        status, body = _request(f"{client_url}/v3/maintenance/status", ca_file=ca_file, client=client, body=b"{}")
        if status != 200:
            return f"HTTP {status} {body[:200].decode(errors='replace')}"
        data = json.loads(body)
        return EtcdMemberStatus(
            member_id=data["header"]["member_id"],
            leader_id=data.get("leader", "0"),
            revision=int(data["header"].get("revision", 0)),
            db_size=int(data.get("dbSize", 0)),
        )
    except (OSError, ssl.SSLError, ValueError, KeyError) as e:
        return str(getattr(e, "reason", e))
