"""Pure renderers behind `provision dev` (and later the Ansible roles): etcd flags and haproxy.cfg."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from provisioner.configure.etcd import EtcdMember, EtcdTls, etcd_flags, initial_cluster
from provisioner.configure.haproxy import Backend, HealthCheck, render_haproxy_cfg
from provisioner.pki import CertificateAuthority

MEMBERS = tuple(EtcdMember(name=f"etcd-{i}", address=f"127.9.1.{i + 1}") for i in range(3))
TLS = EtcdTls(
    ca_file=Path("/pki/ca.crt"),
    server_cert_file=Path("/pki/s.crt"),
    server_key_file=Path("/pki/s.key"),
    peer_cert_file=Path("/pki/p.crt"),
    peer_key_file=Path("/pki/p.key"),
)


def _flags(member: EtcdMember = MEMBERS[1]) -> dict[str, str]:
    flags = etcd_flags(member, members=MEMBERS, tls=TLS, data_dir=Path("/data/etcd-1"), cluster_token="tok")
    return dict(f.removeprefix("--").split("=", 1) for f in flags)


def test_initial_cluster_lists_every_member_by_peer_url() -> None:
    assert initial_cluster(MEMBERS) == (
        "etcd-0=https://127.9.1.1:2380,etcd-1=https://127.9.1.2:2380,etcd-2=https://127.9.1.3:2380"
    )


def test_etcd_member_listens_and_advertises_on_its_own_address() -> None:
    flags = _flags()
    assert flags["name"] == "etcd-1"
    assert flags["listen-client-urls"] == flags["advertise-client-urls"] == "https://127.9.1.2:2379"
    assert flags["listen-peer-urls"] == flags["initial-advertise-peer-urls"] == "https://127.9.1.2:2380"
    assert flags["initial-cluster"] == initial_cluster(MEMBERS)
    assert flags["initial-cluster-token"] == "tok"
    assert flags["data-dir"] == "/data/etcd-1"


def test_etcd_requires_client_certificates_from_peers_and_clients() -> None:
    flags = _flags()
    assert flags["client-cert-auth"] == flags["peer-client-cert-auth"] == "true"
    assert flags["trusted-ca-file"] == flags["peer-trusted-ca-file"] == "/pki/ca.crt"
    assert (flags["cert-file"], flags["key-file"]) == ("/pki/s.crt", "/pki/s.key")
    assert (flags["peer-cert-file"], flags["peer-key-file"]) == ("/pki/p.crt", "/pki/p.key")


def test_etcd_compacts_periodically_with_pre_vote_and_zap_logging() -> None:
    flags = _flags()
    assert flags["auto-compaction-mode"] == "periodic"
    assert flags["auto-compaction-retention"] == "5m"
    assert flags["pre-vote"] == "true"
    assert flags["logger"] == "zap"


def test_etcd_flags_reject_a_member_outside_the_cluster() -> None:
    with pytest.raises(ValueError, match="etcd-9"):
        etcd_flags(
            EtcdMember(name="etcd-9", address="127.9.1.9"),
            members=MEMBERS,
            tls=TLS,
            data_dir=Path("/d"),
            cluster_token="t",
        )


def _haproxy_cfg(tmp_path: Path) -> str:
    ca, pem = tmp_path / "ca.crt", tmp_path / "health.pem"
    return render_haproxy_cfg(
        bind_address="127.9.0.1",
        port=6443,
        backends=tuple(Backend(name=f"apiserver-{i}", address=f"127.9.1.{i + 1}", port=6443) for i in range(3)),
        check=HealthCheck(ca_file=ca, client_pem=pem),
    )


def test_haproxy_passes_tcp_through_to_every_api_server(tmp_path: Path) -> None:
    cfg = _haproxy_cfg(tmp_path)
    assert "mode tcp" in cfg
    assert "bind 127.9.0.1:6443" in cfg
    for i in range(3):
        assert f"server apiserver-{i} 127.9.1.{i + 1}:6443" in cfg


def test_haproxy_checks_readyz_over_verified_tls_with_a_client_certificate(tmp_path: Path) -> None:
    cfg = _haproxy_cfg(tmp_path)
    assert "uri /readyz" in cfg
    assert "http-check expect status 200" in cfg
    assert f"check check-ssl verify required ca-file {tmp_path / 'ca.crt'} crt {tmp_path / 'health.pem'}" in cfg


def test_haproxy_accepts_the_rendered_config(tmp_path: Path) -> None:
    """The real haproxy parses it (`-c` only checks; it needs the files it names to exist)."""
    ca = CertificateAuthority.load_or_create(tmp_path)
    issued = ca.issue("health", common_name="health", client=True)
    (tmp_path / "health.pem").write_bytes(issued.cert_file.read_bytes() + issued.key_file.read_bytes())
    cfg_file = tmp_path / "haproxy.cfg"
    cfg_file.write_text(_haproxy_cfg(tmp_path))
    result = subprocess.run(["/usr/sbin/haproxy", "-c", "-f", str(cfg_file)], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_haproxy_needs_a_backend(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="at least one backend"):
        render_haproxy_cfg(
            bind_address="127.9.0.1", port=6443, backends=(), check=HealthCheck(ca_file=tmp_path, client_pem=tmp_path)
        )
