"""Kubeconfigs: embedded credentials the official client can load, and user certificates with the right subject."""

import base64
import stat
from pathlib import Path

import pytest
import yaml
from cryptography import x509
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from kubernetes import config as kube_config
from kubernetes.client import Configuration

from provisioner.errors import ProvisionerError
from provisioner.kubeconfig import issue_user_kubeconfig, write_kubeconfig
from provisioner.pki import CertificateAuthority

SERVER = "https://127.0.0.1:6443"


def _client_cert(kubeconfig: Path) -> x509.Certificate:
    user = yaml.safe_load(kubeconfig.read_text())["users"][0]["user"]
    return x509.load_pem_x509_certificate(base64.b64decode(user["client-certificate-data"]))


def test_written_kubeconfig_loads_in_the_official_client(tmp_path: Path) -> None:
    ca = CertificateAuthority.load_or_create(tmp_path / "pki")
    admin = ca.issue("admin", common_name="admin", organizations=("system:masters",), client=True)
    path = write_kubeconfig(tmp_path / "admin.kubeconfig", cluster_name="lab", server=SERVER, ca_file=ca.cert_file,
                            cert_file=admin.cert_file, key_file=admin.key_file, user="admin")

    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    raw = yaml.safe_load(path.read_text())
    assert raw["current-context"] == "admin@lab"
    assert base64.b64decode(raw["clusters"][0]["cluster"]["certificate-authority-data"]) == ca.cert_file.read_bytes()

    configuration = Configuration()
    kube_config.load_kube_config(config_file=str(path), client_configuration=configuration)
    assert configuration.host == SERVER
    assert Path(configuration.cert_file).read_bytes() == admin.cert_file.read_bytes()
    assert Path(configuration.key_file).read_bytes() == admin.key_file.read_bytes()
    assert Path(configuration.ssl_ca_cert).read_bytes() == ca.cert_file.read_bytes()


def test_rewriting_replaces_the_file(tmp_path: Path) -> None:
    ca = CertificateAuthority.load_or_create(tmp_path / "pki")
    admin = ca.issue("admin", common_name="admin", client=True)
    path = tmp_path / "admin.kubeconfig"
    for server in ("https://127.0.0.1:1", SERVER):
        write_kubeconfig(path, cluster_name="lab", server=server, ca_file=ca.cert_file, cert_file=admin.cert_file,
                         key_file=admin.key_file, user="admin")
    assert yaml.safe_load(path.read_text())["clusters"][0]["cluster"]["server"] == SERVER
    assert sorted(p.name for p in tmp_path.iterdir()) == ["admin.kubeconfig", "pki"]


def test_user_kubeconfig_carries_user_and_groups_in_its_certificate(tmp_path: Path) -> None:
    ca = CertificateAuthority.load_or_create(tmp_path / "pki")
    path = issue_user_kubeconfig(ca=ca, directory=tmp_path, cluster_name="lab", server=SERVER, user="alice",
                                 groups=("dev", "ops", "dev"))
    assert path == tmp_path / "users" / "alice.kubeconfig"
    cert = _client_cert(path)
    assert [a.value for a in cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)] == ["alice"]
    assert [a.value for a in cert.subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)] == ["dev", "ops"]
    usages = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert list(usages) == [ExtendedKeyUsageOID.CLIENT_AUTH]
    assert cert.issuer == ca.cert.subject
    assert yaml.safe_load(path.read_text())["current-context"] == "alice@lab"


def test_user_kubeconfig_is_stable_until_groups_change(tmp_path: Path) -> None:
    ca = CertificateAuthority.load_or_create(tmp_path / "pki")

    def issue(*groups: str) -> x509.Certificate:
        return _client_cert(issue_user_kubeconfig(ca=ca, directory=tmp_path, cluster_name="lab", server=SERVER,
                                                  user="alice", groups=groups))

    first = issue("dev")
    assert issue("dev").serial_number == first.serial_number
    changed = issue("dev", "ops")
    assert changed.serial_number != first.serial_number
    assert [a.value for a in changed.subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)] == ["dev", "ops"]


@pytest.mark.parametrize(
    ("user", "groups", "flag"),
    [
        pytest.param("", (), "--user", id="empty-user"),
        pytest.param("a/b", (), "--user", id="slash"),
        pytest.param("a,b", (), "--user", id="comma"),
        pytest.param("al ice", (), "--user", id="space"),
        pytest.param("..", (), "--user", id="dot-dot"),
        pytest.param("alice", ("dev", ""), "--group", id="empty-group"),
        pytest.param("alice", ("dev,ops",), "--group", id="comma-group"),
    ],
)
def test_invalid_names_name_the_flag(tmp_path: Path, user: str, groups: tuple[str, ...], flag: str) -> None:
    ca = CertificateAuthority.load_or_create(tmp_path / "pki")
    with pytest.raises(ProvisionerError) as caught:
        issue_user_kubeconfig(ca=ca, directory=tmp_path, cluster_name="lab", server=SERVER, user=user,
                              groups=groups)
    assert caught.value.message.startswith(f"{flag} ")
    assert flag in caught.value.hint
    assert not (tmp_path / "users").exists()


@pytest.mark.parametrize("user", ["alice", "system:node:n1", "ci.bot@example.com", "dev-1"])
def test_usual_user_names_are_accepted(tmp_path: Path, user: str) -> None:
    ca = CertificateAuthority.load_or_create(tmp_path / "pki")
    path = issue_user_kubeconfig(ca=ca, directory=tmp_path, cluster_name="lab", server=SERVER, user=user,
                                 groups=("system:nodes",))
    assert _client_cert(path).subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == user
