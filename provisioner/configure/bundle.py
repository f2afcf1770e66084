"""One bundle per host, rendered on the operator's machine: every file the host needs, its units, and a hash.

Under TCG every Ansible task costs seconds of guest CPU (DESIGN.md), so a host receives its whole
configuration as one archive in one task, and one script (`roles/common/files/apply.sh`) installs it.
The hash covers paths, modes, contents, unit groups and the script, never timestamps: rendering the same
cluster again yields the same hash, and a host whose installed hash matches is skipped.

Archive layout: `manifest` (lines `mode path unit,unit|-`: which units restart when the file changes),
`units` (lines `group unit` in start order), `hash`, `apply.sh`, and `files/<absolute path>`.
"""

from __future__ import annotations

import base64
import hashlib
import io
import tarfile
import tempfile
from dataclasses import dataclass
from pathlib import Path

from provisioner.configure.certs import ClusterCerts
from provisioner.configure.etcd import EtcdTls, etcd_flags
from provisioner.configure.haproxy import Backend, HealthCheck, render_haproxy_cfg
from provisioner.configure.keepalived import VrrpInstance, render_keepalived_conf
from provisioner.configure.topology import API_PORT, Host, Topology
from provisioner.configure.units import Unit, render_unit
from provisioner.controlplane.apiserver.config import ApiServerConfig
from provisioner.identities import CONTROLLER_MANAGER_USER, SCHEDULER_USER
from provisioner.kubeconfig import write_kubeconfig
from provisioner.pki import IssuedCert

__all__ = ["APPLY_SCRIPT", "CONFIG_DIR", "STATE_DIR", "Bundle", "BundleFile", "render_bundle", "write_archive"]

CONFIG_DIR = "/etc/provisioner"
STATE_DIR = "/var/lib/provisioner"
PKI = f"{CONFIG_DIR}/pki"
LB_HEALTH_PEM = f"{PKI}/lb-health.pem"  # HAProxy's and keepalived's /readyz probes (certificate and key)
VENV_PYTHON = "/opt/provisioner/venv/bin/python"
APPLY_SCRIPT = Path(__file__).resolve().parents[2] / "roles" / "common" / "files" / "apply.sh"
_LOCAL_API = f"https://127.0.0.1:{API_PORT}"
# Machines may be TCG guests on a busy host with 40+ ms fsyncs: etcd's defaults (100 ms heartbeat, 1 s election
# timeout, tuned for a LAN and SSDs) would hold needless elections there. Keep the 1:10 ratio etcd recommends.
ETCD_TIMING = ("--heartbeat-interval=250", "--election-timeout=2500")
# HAProxy times a check out after `inter` when no `timeout check` is set: a TLS handshake plus /readyz on a
# busy TCG guest takes more than a second, and 1 s checks marked every master down.
LB_CHECK_INTERVAL_MS = 5000
# The first master holds the virtual IP while its API server is ready; the next ones in order after it.
KEEPALIVED_PRIORITY = 150


@dataclass(frozen=True)
class BundleFile:
    path: str  # absolute path on the host
    data: bytes
    mode: int
    units: tuple[str, ...] = ()  # restarted when this file changes


@dataclass(frozen=True)
class Bundle:
    host: str
    files: tuple[BundleFile, ...]
    units: tuple[Unit, ...]
    script: bytes

    @property
    def manifest(self) -> str:
        return "".join(f"{f.mode:o} {f.path} {','.join(f.units) or '-'}\n" for f in self.files)

    @property
    def unit_table(self) -> str:
        return "".join(f"{u.group} {u.name}\n" for u in self.units)

    @property
    def hash(self) -> str:
        digest = hashlib.sha256(self.manifest.encode() + b"\0" + self.unit_table.encode() + b"\0" + self.script)
        for f in self.files:
            digest.update(b"\0" + f.path.encode() + b"\0" + hashlib.sha256(f.data).digest())
        return digest.hexdigest()


def _pair(files: list[BundleFile], cert: IssuedCert, name: str, units: tuple[str, ...]) -> tuple[str, str]:
    crt, key = f"{PKI}/{name}.crt", f"{PKI}/{name}.key"
    files.append(BundleFile(crt, cert.cert_file.read_bytes(), 0o644, units))
    files.append(BundleFile(key, cert.key_file.read_bytes(), 0o600, units))
    return crt, key


def _kubeconfig(topology: Topology, cert: IssuedCert, *, ca_file: Path, user: str) -> bytes:
    with tempfile.TemporaryDirectory() as tmp:
        path = write_kubeconfig(Path(tmp) / "kubeconfig", cluster_name=topology.cluster, server=_LOCAL_API,
                                ca_file=ca_file, cert_file=cert.cert_file, key_file=cert.key_file, user=user)
        return path.read_bytes()


def _unit(files: list[BundleFile], units: list[Unit], unit: Unit) -> None:
    units.append(unit)
    files.append(BundleFile(unit.path, render_unit(unit).encode(), 0o644, (unit.name,)))


def _master(topology: Topology, host: Host, certs: ClusterCerts, files: list[BundleFile], units: list[Unit]) -> None:
    etcd, api, cm, sched = (f"provisioner-{n}.service" for n in ("etcd", "apiserver", "controllers", "scheduler"))
    mine = certs.masters[host.name]
    server = _pair(files, mine.etcd_server, "etcd-server", (etcd,))
    peer = _pair(files, mine.etcd_peer, "etcd-peer", (etcd,))
    _pair(files, certs.clients.etcd_client, "etcd-client", ())
    tls = EtcdTls(ca_file=Path(f"{PKI}/ca.crt"), server_cert_file=Path(server[0]), server_key_file=Path(server[1]),
                  peer_cert_file=Path(peer[0]), peer_key_file=Path(peer[1]))
    member = next(m for m in topology.etcd_members if m.name == host.name)
    flags = etcd_flags(member, members=topology.etcd_members, tls=tls, data_dir=Path(f"{STATE_DIR}/etcd"),
                       cluster_token=f"provisioner-{topology.cluster}") + list(ETCD_TIMING)
    _unit(files, units, Unit(etcd, "etcd", "provisioner etcd member", ("/usr/bin/etcd", *flags)))

    serving = _pair(files, certs.apiserver, "apiserver", (api,))
    etcd_client = _pair(files, certs.clients.apiserver_etcd_client, "apiserver-etcd-client", (api,))
    kubelet_client = _pair(files, certs.clients.kubelet_client, "apiserver-kubelet-client", (api,))
    config = ApiServerConfig(
        bind_address="0.0.0.0", port=API_PORT, tls_cert_file=Path(serving[0]), tls_key_file=Path(serving[1]),
        client_ca_file=Path(f"{PKI}/ca.crt"), etcd_endpoints=topology.etcd_endpoints,
        etcd_ca_file=Path(f"{PKI}/ca.crt"), etcd_cert_file=Path(etcd_client[0]), etcd_key_file=Path(etcd_client[1]),
        server_name=host.name, advertise_address=host.address,
        kubelet_client_cert_file=Path(kubelet_client[0]), kubelet_client_key_file=Path(kubelet_client[1]),
    )
    files.append(BundleFile(f"{CONFIG_DIR}/apiserver.yaml", config.dumps().encode(), 0o644, (api,)))
    _unit(files, units, Unit(api, "apiserver", "provisioner API server",
                             (VENV_PYTHON, "-m", "provisioner.controlplane.apiserver", "--config",
                              f"{CONFIG_DIR}/apiserver.yaml")))
    for unit, module, cert, user in ((cm, "controllers", certs.clients.controller_manager, CONTROLLER_MANAGER_USER),
                                     (sched, "scheduler", certs.clients.scheduler, SCHEDULER_USER)):
        path = f"{CONFIG_DIR}/{module}.kubeconfig"
        files.append(BundleFile(path, _kubeconfig(topology, cert, ca_file=certs.ca_file, user=user), 0o600, (unit,)))
        _unit(files, units, Unit(unit, "control-plane", f"provisioner {module}",
                                 (VENV_PYTHON, "-m", f"provisioner.controlplane.{module}", "--kubeconfig", path,
                                  "--identity", host.name)))
    if topology.vip is not None:
        _virtual_ip(topology, host, certs, files, units)


def _haproxy(topology: Topology, certs: ClusterCerts, files: list[BundleFile], units: list[Unit], *,
             bind_address: str, port: int, description: str) -> None:
    """HAProxy over every master's API server, health-checked on /readyz with the lb-health certificate."""
    lb = "provisioner-haproxy.service"
    files.append(BundleFile(LB_HEALTH_PEM, _pem(certs.clients.lb_health), 0o600, (lb,)))
    backends = tuple(Backend(name=m.name, address=m.address, port=API_PORT) for m in topology.masters)
    cfg = render_haproxy_cfg(bind_address=bind_address, port=port, backends=backends,
                             check=HealthCheck(ca_file=Path(f"{PKI}/ca.crt"), client_pem=Path(LB_HEALTH_PEM),
                                               interval_ms=LB_CHECK_INTERVAL_MS, rise=1, fall=3))
    files.append(BundleFile(f"{CONFIG_DIR}/haproxy.cfg", cfg.encode(), 0o644, (lb,)))
    _unit(files, units, Unit(lb, "loadbalancer", description,
                             ("/usr/sbin/haproxy", "-db", "-f", f"{CONFIG_DIR}/haproxy.cfg")))


def _pem(cert: IssuedCert) -> bytes:
    return cert.cert_file.read_bytes() + cert.key_file.read_bytes()


def _virtual_ip(topology: Topology, host: Host, certs: ClusterCerts, files: list[BundleFile],
                units: list[Unit]) -> None:
    """On every master: HAProxy on the virtual IP's port (on all addresses: only one master holds the IP at a
    time, and HAProxy cannot bind an address it does not hold) and keepalived moving the IP to a ready master."""
    assert topology.vip is not None
    _haproxy(topology, certs, files, units, bind_address="0.0.0.0", port=topology.vip.port,
             description="provisioner API load balancer behind the virtual IP")
    keepalived, run = "provisioner-keepalived.service", "provisioner-keepalived"
    apply, interface_file = ("/bin/sh", f"{STATE_DIR}/bundle/apply.sh"), f"/run/{run}/interface.conf"
    conf = render_keepalived_conf(VrrpInstance(
        cluster=topology.cluster, address=host.address, vip=topology.vip.address,
        priority=KEEPALIVED_PRIORITY - topology.masters.index(host),
        peers=tuple(m.address for m in topology.masters if m != host), interface_file=interface_file,
        check=(*apply, "ready", f"{_LOCAL_API}/readyz", LB_HEALTH_PEM, LB_HEALTH_PEM)))
    files.append(BundleFile(f"{CONFIG_DIR}/keepalived.conf", conf.encode(), 0o644, (keepalived,)))
    argv = ("/usr/sbin/keepalived", "--vrrp", "--dont-fork", "--log-console", "--log-detail",
            f"--use-file={CONFIG_DIR}/keepalived.conf", f"--pid=/run/{run}/keepalived.pid",
            f"--vrrp_pid=/run/{run}/vrrp.pid")
    _unit(files, units, Unit(keepalived, "loadbalancer", "provisioner keepalived: the API's virtual IP", argv,
                             prepare=(*apply, "vrrp-interface", host.address, interface_file),
                             runtime_directory=run))


def _node(topology: Topology, host: Host, certs: ClusterCerts, files: list[BundleFile], units: list[Unit]) -> None:
    agent = "provisioner-agent.service"
    _haproxy(topology, certs, files, units, bind_address="127.0.0.1", port=API_PORT,
             description="provisioner node-local API load balancer")
    cert = certs.agents[host.name]
    crt, key = _pair(files, cert, "agent", (agent,))
    kubeconfig = f"{CONFIG_DIR}/agent.kubeconfig"
    files.append(BundleFile(kubeconfig, _kubeconfig(topology, cert, ca_file=certs.ca_file,
                                                    user=f"system:node:{host.name}"), 0o600, (agent,)))
    _unit(files, units, Unit(agent, "node", "provisioner node agent",
                             (VENV_PYTHON, "-m", "provisioner.controlplane.agent", "--kubeconfig", kubeconfig,
                              "--node-name", host.name, "--address", host.address, "--root", f"{STATE_DIR}/agent",
                              "--tls-cert-file", crt, "--tls-key-file", key)))


def render_bundle(topology: Topology, host: Host, certs: ClusterCerts) -> Bundle:
    """Everything `host` runs, as files and units; pure apart from reading the issued certificates."""
    files = [BundleFile(f"{PKI}/ca.crt", certs.ca_file.read_bytes(), 0o644)]
    units: list[Unit] = []
    (_master if host.role == "master" else _node)(topology, host, certs, files, units)
    return Bundle(host=host.name, files=tuple(files), units=tuple(units), script=APPLY_SCRIPT.read_bytes())


def write_archive(bundle: Bundle, path: Path) -> Path:
    """The bundle as a gzip'd tar, base64-encoded on one line: the role sends it inside one `raw` command, so
    pushing needs no Python on the host (a `copy` took minutes on a busy TCG guest). Rewritten only when the
    hash changed."""
    hash_file = path.with_name(path.name + ".sha256")
    if path.is_file() and hash_file.is_file() and hash_file.read_text().strip() == bundle.hash:
        return path
    entries = [("manifest", bundle.manifest.encode(), 0o644), ("units", bundle.unit_table.encode(), 0o644),
               ("hash", (bundle.hash + "\n").encode(), 0o644), ("apply.sh", bundle.script, 0o755),
               *((f"files{f.path}", f.data, f.mode) for f in bundle.files)]
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        for name, data, mode in entries:
            info = tarfile.TarInfo(name)
            info.size, info.mode = len(data), mode
            tar.addfile(info, io.BytesIO(data))
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(base64.b64encode(buffer.getvalue()))
    path.chmod(0o600)
    hash_file.write_text(bundle.hash + "\n")
    return path
