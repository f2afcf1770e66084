"""/readyz follows etcd, so a load balancer only sends clients to API servers that can serve them."""

from __future__ import annotations

import time

import pytest
import urllib3
from conftest import DevCluster

pytestmark = pytest.mark.integration

_ETCD_MEMBERS = ("etcd-0", "etcd-1", "etcd-2")


def _readyz(pool: urllib3.PoolManager, url: str) -> int:
    return pool.request("GET", f"{url}/readyz", timeout=10, retries=False).status


def _wait_ready(pool: urllib3.PoolManager, url: str) -> None:
    deadline = time.monotonic() + 60
    while True:
        try:
            if _readyz(pool, url) == 200:
                return
        except urllib3.exceptions.HTTPError:
            pass  # HAProxy may still have every backend marked down
        assert time.monotonic() < deadline, f"{url} never became ready again"
        time.sleep(0.2)


def test_readyz_fails_while_etcd_is_gone_and_recovers_with_it(dev_cluster: DevCluster) -> None:
    pool = urllib3.PoolManager(ca_certs=str(dev_cluster.ca_file), cert_reqs="CERT_REQUIRED")
    url = dev_cluster.apiservers[0]
    assert _readyz(pool, url) == 200
    # Every member: a lone surviving member would still answer the serializable read behind /readyz.
    try:
        for member in _ETCD_MEMBERS:
            dev_cluster.kill(member)
        assert [_readyz(pool, u) for u in dev_cluster.apiservers] == [500] * len(dev_cluster.apiservers)
        assert pool.request("GET", f"{url}/livez").status == 200
    finally:
        dev_cluster.restart()
    for u in (*dev_cluster.apiservers, dev_cluster.server):
        _wait_ready(pool, u)
