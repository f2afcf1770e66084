"""The API's virtual IP on bare metal: keepalived.conf (checked by keepalived itself), the masters' bundles,
the serving certificate, the inventory, the operator's endpoint, preflight, and apply.sh's interface lookup."""

from __future__ import annotations

import ipaddress
import subprocess
from dataclasses import replace
from pathlib import Path

import pytest
import yaml
from cryptography import x509

from provisioner.cluster.machines import Machine
from provisioner.cluster.preflight import parse_probe
from provisioner.cluster.up import topology_of, vip_endpoint
from provisioner.configure.bundle import APPLY_SCRIPT, render_bundle
from provisioner.configure.certs import issue_cluster_certs
from provisioner.configure.inventory import InventoryHost, SshTarget, render_inventory
from provisioner.configure.keepalived import VrrpInstance, render_keepalived_conf, virtual_router_id
from provisioner.configure.topology import Host, Topology, VirtualIp
from provisioner.spec import ClusterSpec

VIP = VirtualIp(address="10.88.1.250", port=8443)
INTERFACE_FILE = "/run/provisioner-keepalived/interface.conf"


def _topology(vip: VirtualIp | None = VIP) -> Topology:
    masters = tuple(Host(name=f"c-m{i}", role="master", address=f"10.88.1.1{i}") for i in range(3))
    return Topology(cluster="c", masters=masters, nodes=(Host(name="c-n0", role="node", address="10.88.1.20"),),
                    endpoint_host="127.0.0.1", vip=vip)


def _files(topology: Topology, host: Host, pki: Path) -> dict[str, str]:
    bundle = render_bundle(topology, host, issue_cluster_certs(topology, pki))
    return {f.path: f.data.decode() for f in bundle.files}


def test_each_master_runs_haproxy_on_the_vip_port_and_keepalived(tmp_path: Path) -> None:
    topology = _topology()
    bundle = render_bundle(topology, topology.masters[1], issue_cluster_certs(topology, tmp_path))
    assert [(u.group, u.name) for u in bundle.units][-2:] == [
        ("loadbalancer", "provisioner-haproxy.service"), ("loadbalancer", "provisioner-keepalived.service")]
    files = {f.path: f.data.decode() for f in bundle.files}
    cfg = files["/etc/provisioner/haproxy.cfg"]
    assert "bind 0.0.0.0:8443" in cfg
    assert all(f"server c-m{i} 10.88.1.1{i}:6443" in cfg for i in range(3))
    unit = files["/etc/systemd/system/provisioner-keepalived.service"]
    assert "RuntimeDirectory=provisioner-keepalived\n" in unit
    assert f"ExecStartPre=/bin/sh /var/lib/provisioner/bundle/apply.sh vrrp-interface 10.88.1.11 {INTERFACE_FILE}\n" \
        in unit
    assert "--use-file=/etc/provisioner/keepalived.conf" in unit


def test_keepalived_conf_prioritises_by_index_peers_over_unicast_and_tracks_local_readyz(tmp_path: Path) -> None:
    topology = _topology()
    confs = [_files(topology, m, tmp_path)["/etc/provisioner/keepalived.conf"] for m in topology.masters]
    assert [next(line.split()[1] for line in c.splitlines() if line.split()[:1] == ["priority"]) for c in confs] == \
        ["150", "149", "148"]
    conf = confs[1]
    assert "unicast_src_ip 10.88.1.11" in conf
    peers = conf.split("unicast_peer {")[1].split("}")[0].split()
    assert peers == ["10.88.1.10", "10.88.1.12"]
    assert "10.88.1.250/32" in conf
    assert f"virtual_router_id {virtual_router_id('c')}" in conf
    assert ('script "/bin/sh /var/lib/provisioner/bundle/apply.sh ready https://127.0.0.1:6443/readyz '
            '/etc/provisioner/pki/lb-health.pem /etc/provisioner/pki/lb-health.pem"') in conf


def test_a_lone_master_has_no_unicast_peers(tmp_path: Path) -> None:
    topology = replace(_topology(), masters=_topology().masters[:1])
    conf = _files(topology, topology.masters[0], tmp_path)["/etc/provisioner/keepalived.conf"]
    assert "unicast" not in conf and "10.88.1.250/32" in conf


def test_keepalived_accepts_the_rendered_config(tmp_path: Path) -> None:
    """keepalived's own --config-test, with the interface file the unit writes on a host (this machine's NIC)."""
    topology = _topology()
    conf = _files(topology, topology.masters[0], tmp_path / "pki")["/etc/provisioner/keepalived.conf"]
    nic = next(n.name for n in sorted(Path("/sys/class/net").iterdir()) if n.name != "lo")
    (tmp_path / "interface.conf").write_text(f"interface {nic}\n")
    (tmp_path / "keepalived.conf").write_text(conf.replace(INTERFACE_FILE, str(tmp_path / "interface.conf")))
    done = subprocess.run(["keepalived", "--config-test", "-f", str(tmp_path / "keepalived.conf")],
                          capture_output=True, text=True, timeout=30)
    assert done.returncode == 0, done.stderr
    (tmp_path / "keepalived.conf").write_text(conf.replace(INTERFACE_FILE, "/nonexistent/interface.conf"))
    broken = subprocess.run(["keepalived", "--config-test", "-f", str(tmp_path / "keepalived.conf")],
                            capture_output=True, text=True, timeout=30)
    assert broken.returncode != 0


def test_without_a_vip_masters_run_no_balancer(tmp_path: Path) -> None:
    topology = _topology(vip=None)
    files = _files(topology, topology.masters[0], tmp_path)
    assert not any("keepalived" in p or "haproxy" in p for p in files)


def test_the_serving_certificate_names_the_vip(tmp_path: Path) -> None:
    certs = issue_cluster_certs(_topology(), tmp_path)
    cert = x509.load_pem_x509_certificate(certs.apiserver.cert_file.read_bytes())
    names = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert ipaddress.IPv4Address("10.88.1.250") in names.get_values_for_type(x509.IPAddress)


def _host(name: str, role: str) -> InventoryHost:
    ssh = SshTarget(host="127.0.0.1", port=2200, user="root", key_file=Path("/k"))
    return InventoryHost(name=name, role=role, address="10.88.1.10", ssh=ssh, bundle_file=Path("/b"), bundle_hash="h")


def test_inventory_puts_the_masters_in_api_vip_waiting_on_the_vip() -> None:
    hosts = (_host("m0", "master"), _host("n0", "node"))
    with_vip = yaml.safe_load(render_inventory(hosts, vip_url=VIP.url))["all"]["children"]["api_vip"]["hosts"]
    assert with_vip == {"m0": {"loadbalancer_ready_url": "https://10.88.1.250:8443/readyz"}}
    assert yaml.safe_load(render_inventory(hosts))["all"]["children"]["api_vip"]["hosts"] == {}


def _master(ssh_host: str) -> Machine:
    return Machine(name="m0", role="master", address="10.88.1.10", api_port=6443, reusable=True,
                   ssh=SshTarget(host=ssh_host, port=22, user="root", key_file=Path("/k")))


def test_the_operator_uses_the_vip_only_from_the_masters_network() -> None:
    spec = ClusterSpec(name="c", api_vip="10.88.1.250")  # cloud checks belong to spec validation
    assert vip_endpoint(spec, (_master("10.88.1.10"),)) == "https://10.88.1.250:8443"
    assert vip_endpoint(spec, (_master("127.0.0.1"),)) == ""  # behind forwarded ports: the cloud's balancer
    assert vip_endpoint(replace(spec, api_endpoint="api.example:443"), (_master("10.88.1.10"),)) == ""
    assert topology_of(spec, (_master("10.88.1.10"),)).vip == VIP


def test_preflight_wants_the_vip_port_free_on_masters() -> None:
    output = "os=debian 12\nclock=100.0\ninstalled=no\nlistening=22 8443 \nfsync_ms=1.0\n"
    findings = parse_probe(_master("10.88.1.10"), output, sent=99.9, received=100.1, master_ports=(8443,))
    assert [(f.severity, f.message) for f in findings] == [("error", "port(s) 8443 already in use by another service")]
    assert parse_probe(_master("10.88.1.10"), output, sent=99.9, received=100.1) == []


def test_apply_script_finds_the_interface_holding_an_address(tmp_path: Path) -> None:
    out = tmp_path / "interface.conf"
    done = subprocess.run(["sh", str(APPLY_SCRIPT), "vrrp-interface", "127.0.0.1", str(out)], capture_output=True,
                          text=True, timeout=30)
    assert done.returncode == 0 and out.read_text() == "interface lo\n"
    missing = subprocess.run(["sh", str(APPLY_SCRIPT), "vrrp-interface", "192.0.2.77", str(tmp_path / "x")],
                             capture_output=True, text=True, timeout=30)
    assert missing.returncode == 1 and "no interface holds 192.0.2.77" in missing.stderr


@pytest.mark.parametrize("priority", [0, 255])
def test_priorities_outside_vrrp_range_are_refused(priority: int) -> None:
    with pytest.raises(ValueError, match="1-254"):
        render_keepalived_conf(VrrpInstance(cluster="c", address="10.0.0.1", peers=(), vip="10.0.0.9",
                                            priority=priority, check=("true",), interface_file="/x"))
