"""HAProxy configuration rendering for the `haproxy` load-balancer driver."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from provisioner.infra.haproxy_config import ALGORITHMS, BalancerConfig, render


def config(**changes: object) -> BalancerConfig:
    values: dict[str, object] = {
        "name": "api",
        "address": "127.0.0.1",
        "port": 6443,
        "protocol": "tcp",
        "algorithm": "roundrobin",
        "members": (("127.0.0.1", 40001), ("127.0.0.1", 40002)),
        "admin_socket": Path("/run/x/admin.sock"),
    }
    return BalancerConfig(**{**values, **changes})  # type: ignore[arg-type]


def test_listens_on_the_given_loopback_address_and_port() -> None:
    assert "    bind 127.0.0.1:6443" in render(config()).splitlines()


def test_every_member_is_health_checked() -> None:
    servers = [line for line in render(config()).splitlines() if line.strip().startswith("server ")]
    assert servers == [
        "    server 127.0.0.1:40001 127.0.0.1:40001 check inter 1000 fall 2 rise 1",
        "    server 127.0.0.1:40002 127.0.0.1:40002 check inter 1000 fall 2 rise 1",
    ]


@pytest.mark.parametrize(("protocol", "httpchk"), [("tcp", False), ("http", True)], ids=["tcp", "http"])
def test_http_balancers_check_with_a_get_and_tcp_ones_by_connecting(protocol: str, httpchk: bool) -> None:
    text = render(config(protocol=protocol, health_path="/healthz"))
    assert f"    mode {protocol}" in text.splitlines()
    assert ("option httpchk GET /healthz" in text) is httpchk


def test_libcloud_algorithms_map_to_haproxy_balance_keywords() -> None:
    assert ALGORITHMS == {
        "ROUND_ROBIN": "roundrobin",
        "LEAST_CONNECTIONS": "leastconn",
        "RANDOM": "random",
        "PERSISTENT_IP": "source",
    }
    assert "    balance leastconn" in render(config(algorithm="leastconn")).splitlines()


def test_a_balancer_without_members_is_still_valid(tmp_path: Path) -> None:
    cfg = tmp_path / "haproxy.cfg"
    cfg.write_text(render(config(members=(), admin_socket=tmp_path / "admin.sock")))
    done = subprocess.run(["haproxy", "-c", "-q", "-f", str(cfg)], capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr
