"""The table of what a dev cluster runs, in start order. Adding a component is one `ComponentSpec` entry.

A spec says which instances exist for a layout, how to launch one (command line plus the config files
it reads, returned as values: the cluster writes them), and how to tell that one is healthy. All
instances of a component start together and are awaited together (etcd members only become
healthy once a quorum runs), before the next component starts.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from provisioner.configure.etcd import EtcdMember, EtcdTls, etcd_flags
from provisioner.configure.haproxy import Backend, HealthCheck, render_haproxy_cfg
from provisioner.controlplane.apiserver.config import ApiServerConfig
from provisioner.dev.certs import DevCerts
from provisioner.dev.layout import APISERVER_PORT, ETCD_CLIENT_PORT, ETCD_PEER_PORT, Layout, node_name
from provisioner.dev.probes import etcd_health, https_ready
from provisioner.identities import CONTROLLER_MANAGER_USER, SCHEDULER_USER
from provisioner.pki import IssuedCert

__all__ = ["AGENT", "COMPONENTS", "ETCD", "ClusterPaths", "ComponentSpec", "Context", "Instance", "Launch",
           "identities"]

ETCD_BINARY = "/usr/bin/etcd"
AGENT_PORT = 10250
HAPROXY_BINARY = "/usr/sbin/haproxy"


@dataclass(frozen=True)
class ClusterPaths:
    root: Path

    @property
    def state_file(self) -> Path:
        return self.root / "cluster.json"

    @property
    def pki(self) -> Path:
        return self.root / "pki"

    @property
    def config(self) -> Path:
        return self.root / "config"

    @property
    def logs(self) -> Path:
        return self.root / "logs"

    @property
    def data(self) -> Path:
        return self.root / "data"

    @property
    def admin_kubeconfig(self) -> Path:
        return self.root / "admin.kubeconfig"

    def kubeconfig(self, identity: str) -> Path:
        """A component's own kubeconfig (see `identities`)."""
        return self.root / "kubeconfigs" / f"{identity}.kubeconfig"


@dataclass(frozen=True)
class Context:
    layout: Layout
    paths: ClusterPaths
    certs: DevCerts


@dataclass(frozen=True)
class Instance:
    name: str  # unique in the cluster, e.g. "etcd-1"; also names the log file
    index: int
    address: str
    ports: tuple[int, ...]  # every port it listens on; the first is the one clients use

    @property
    def endpoint(self) -> str:
        return f"{self.address}:{self.ports[0]}" if self.ports else self.address


@dataclass(frozen=True)
class Launch:
    argv: tuple[str, ...]
    files: dict[Path, str] = field(default_factory=dict)  # config files to write before starting


@dataclass(frozen=True)
class ComponentSpec:
    kind: str
    title: str  # names the start phase in progress output
    instances: Callable[[Layout], tuple[Instance, ...]]
    launch: Callable[[Context, Instance], Launch]
    unhealthy: Callable[[Context, Instance], str | None]  # None when healthy, else why not


def _masters(kind: str, *ports: int) -> Callable[[Layout], tuple[Instance, ...]]:
    def instances(layout: Layout) -> tuple[Instance, ...]:
        return tuple(
            Instance(name=f"{kind}-{i}", index=i, address=address, ports=ports)
            for i, address in enumerate(layout.master_addresses)
        )

    return instances


def _etcd_members(layout: Layout) -> tuple[EtcdMember, ...]:
    return tuple(
        EtcdMember(name=f"etcd-{i}", address=a, client_port=ETCD_CLIENT_PORT, peer_port=ETCD_PEER_PORT)
        for i, a in enumerate(layout.master_addresses)
    )


def _etcd_launch(ctx: Context, inst: Instance) -> Launch:
    members = _etcd_members(ctx.layout)
    server, peer = ctx.certs.etcd_server[inst.index], ctx.certs.etcd_peer[inst.index]
    tls = EtcdTls(
        ca_file=ctx.certs.ca_file,
        server_cert_file=server.cert_file,
        server_key_file=server.key_file,
        peer_cert_file=peer.cert_file,
        peer_key_file=peer.key_file,
    )
    flags = etcd_flags(
        members[inst.index],
        members=members,
        tls=tls,
        data_dir=ctx.paths.data / inst.name,
        cluster_token=f"provisioner-{ctx.layout.name}",
    )
    return Launch(argv=(ETCD_BINARY, *flags))


def _etcd_unhealthy(ctx: Context, inst: Instance) -> str | None:
    return etcd_health(f"https://{inst.endpoint}", ca_file=ctx.certs.ca_file, client=ctx.certs.clients.etcd_client)


def _apiserver_launch(ctx: Context, inst: Instance) -> Launch:
    config_file = ctx.paths.config / f"{inst.name}.yaml"
    config = ApiServerConfig(
        bind_address=inst.address,
        port=inst.ports[0],
        tls_cert_file=ctx.certs.apiserver.cert_file,
        tls_key_file=ctx.certs.apiserver.key_file,
        client_ca_file=ctx.certs.ca_file,
        etcd_endpoints=tuple(f"{m.address}:{m.client_port}" for m in _etcd_members(ctx.layout)),
        etcd_ca_file=ctx.certs.ca_file,
        etcd_cert_file=ctx.certs.clients.apiserver_etcd_client.cert_file,
        etcd_key_file=ctx.certs.clients.apiserver_etcd_client.key_file,
        server_name=inst.name,
        kubelet_client_cert_file=ctx.certs.clients.kubelet_client.cert_file,
        kubelet_client_key_file=ctx.certs.clients.kubelet_client.key_file,
    )
    return Launch(
        argv=(sys.executable, "-m", "provisioner.controlplane.apiserver", "--config", str(config_file)),
        files={config_file: config.dumps()},
    )


def _readyz(ctx: Context, inst: Instance) -> str | None:
    return https_ready(f"https://{inst.endpoint}/readyz", ca_file=ctx.certs.ca_file, client=ctx.certs.clients.admin)


def _lb_instances(layout: Layout) -> tuple[Instance, ...]:
    return (Instance(name="haproxy", index=0, address=layout.lb_address, ports=(APISERVER_PORT,)),)


def _haproxy_launch(ctx: Context, inst: Instance) -> Launch:
    config_file = ctx.paths.config / "haproxy.cfg"
    backends = tuple(Backend(name=a.name, address=a.address, port=a.ports[0]) for a in APISERVER.instances(ctx.layout))
    text = render_haproxy_cfg(
        bind_address=inst.address,
        port=inst.ports[0],
        backends=backends,
        check=HealthCheck(ca_file=ctx.certs.ca_file, client_pem=ctx.certs.lb_health_pem),
    )
    return Launch(argv=(HAPROXY_BINARY, "-db", "-f", str(config_file)), files={config_file: text})


ETCD = ComponentSpec(
    kind="etcd",
    title="etcd members",
    instances=_masters("etcd", ETCD_CLIENT_PORT, ETCD_PEER_PORT),
    launch=_etcd_launch,
    unhealthy=_etcd_unhealthy,
)
APISERVER = ComponentSpec(
    kind="apiserver",
    title="API servers",
    instances=_masters("apiserver", APISERVER_PORT),
    launch=_apiserver_launch,
    unhealthy=_readyz,
)
HAPROXY = ComponentSpec(
    kind="haproxy", title="load balancer", instances=_lb_instances, launch=_haproxy_launch, unhealthy=_readyz
)


def identities(ctx: Context) -> dict[str, tuple[str, IssuedCert]]:
    """Kubeconfig name -> (user, client certificate) for every component that talks to the API server.

    Each acts as the user the bootstrap RBAC grants exactly its needs, never as a system:masters admin.
    """
    agents = {f"agent-{j}": (f"system:node:{node_name(j)}", cert) for j, cert in enumerate(ctx.certs.agents)}
    return {"controller-manager": (CONTROLLER_MANAGER_USER, ctx.certs.clients.controller_manager),
            "scheduler": (SCHEDULER_USER, ctx.certs.clients.scheduler), **agents}


def _control_loop(module: str, kind: str) -> Callable[[Context, Instance], Launch]:
    """A leader-elected process on every master (controller manager, scheduler), each kind with its own identity."""

    def launch(ctx: Context, inst: Instance) -> Launch:
        return Launch(argv=(sys.executable, "-m", module, "--kubeconfig", str(ctx.paths.kubeconfig(kind)),
                            "--identity", f"{kind}-{inst.index}"))

    return launch


def _loops(kind: str) -> Callable[[Layout], tuple[Instance, ...]]:
    """One per master, but only in a cluster with nodes: without nodes there is no workload to run."""
    on_masters = _masters(kind)
    return lambda layout: on_masters(layout) if layout.nodes else ()


def _running(ctx: Context, inst: Instance) -> str | None:
    return None  # alive is enough: only the Lease holder acts, the others wait


def _agents(layout: Layout) -> tuple[Instance, ...]:
    return tuple(Instance(name=f"agent-{j}", index=j, address=a, ports=(AGENT_PORT,))
                 for j, a in enumerate(layout.node_addresses))


def _agent_launch(ctx: Context, inst: Instance) -> Launch:
    cert = ctx.certs.agents[inst.index]
    return Launch(argv=(sys.executable, "-m", "provisioner.controlplane.agent",
                        "--kubeconfig", str(ctx.paths.kubeconfig(inst.name)), "--node-name", node_name(inst.index),
                        "--address", inst.address, "--root", str(ctx.paths.data / inst.name),
                        "--tls-cert-file", str(cert.cert_file), "--tls-key-file", str(cert.key_file),
                        "--client-ca-file", str(ctx.certs.ca_file)))


def _agent_healthz(ctx: Context, inst: Instance) -> str | None:
    return https_ready(f"https://{inst.endpoint}/healthz", ca_file=ctx.certs.ca_file, client=ctx.certs.clients.admin)


CONTROLLER_MANAGER = ComponentSpec(kind="controller-manager", title="controller managers",
                                   instances=_loops("controller-manager"),
                                   launch=_control_loop("provisioner.controlplane.controllers", "controller-manager"),
                                   unhealthy=_running)
SCHEDULER = ComponentSpec(kind="scheduler", title="schedulers", instances=_loops("scheduler"),
                          launch=_control_loop("provisioner.controlplane.scheduler", "scheduler"), unhealthy=_running)
AGENT = ComponentSpec(kind="agent", title="node agents", instances=_agents, launch=_agent_launch,
                      unhealthy=_agent_healthz)

COMPONENTS: tuple[ComponentSpec, ...] = (ETCD, APISERVER, HAPROXY, CONTROLLER_MANAGER, SCHEDULER, AGENT)
