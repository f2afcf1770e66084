"""How etcd endpoints become one gRPC target that fails over across members."""

from __future__ import annotations

import pytest

from provisioner.controlplane.store import grpc_target
from provisioner.controlplane.store.kv import decode, encode


@pytest.mark.parametrize(("endpoints", "target"), [
    pytest.param(["127.0.0.11:2379"], "ipv4:127.0.0.11:2379", id="one-member"),
    pytest.param(["127.0.0.11:2379", "127.0.0.12:2379", "127.0.0.13:2379"],
                 "ipv4:127.0.0.11:2379,127.0.0.12:2379,127.0.0.13:2379", id="three-members-fail-over"),
    pytest.param(["[::1]:2379", "[::2]:2379"], "ipv6:[::1]:2379,[::2]:2379", id="ipv6"),
    pytest.param(["etcd.example:2379"], "dns:///etcd.example:2379", id="one-host-name"),
])
def test_endpoints_become_one_grpc_target(endpoints: list[str], target: str) -> None:
    assert grpc_target(endpoints) == target


def test_several_host_names_are_refused_because_grpc_cannot_fail_over_between_them() -> None:
    with pytest.raises(ValueError, match="single endpoint"):
        grpc_target(["a.example:2379", "b.example:2379"])


def test_values_round_trip_as_compact_utf8_json() -> None:
    value = {"metadata": {"name": "ü"}, "data": {"k": "v"}}
    assert encode(value) == '{"metadata":{"name":"ü"},"data":{"k":"v"}}'.encode()
    assert decode(encode(value)) == value
