"""/readyz follows etcd, so a load balancer only sends clients to API servers that can serve them."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
import urllib3
from _apiserver_harness import cluster, wait_for_port

pytestmark = pytest.mark.integration


def _readyz(pool: urllib3.PoolManager, url: str) -> int:
    return pool.request("GET", f"{url}/readyz", timeout=10).status


def test_readyz_fails_while_etcd_is_gone_and_recovers_with_it(tmp_path: Path) -> None:
    with cluster(tmp_path, ("127.0.0.101",)) as c:
        c.start_apiserver("a", "127.0.0.101")
        pool = urllib3.PoolManager(ca_certs=str(c.ca.cert_file), cert_reqs="CERT_REQUIRED")
        url = c.url("a")
        assert _readyz(pool, url) == 200
        assert pool.request("GET", f"{url}/livez").status == 200
        member = c.members[0]
        c.stop_etcd(member)
        assert _readyz(pool, url) == 500
        c.start_etcd(member)
        wait_for_port(member.host, member.client_port, proc=member.proc)
        deadline = time.monotonic() + 30
        while _readyz(pool, url) != 200:
            assert time.monotonic() < deadline, "API server never became ready again"
            time.sleep(0.2)
