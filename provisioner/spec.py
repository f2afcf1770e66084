"""The cluster spec: one YAML file, validated all at once, with defaults an operator would expect.

`load_spec` reads the file, applies command-line overrides on top, and either returns a frozen
`ClusterSpec` or raises one `SpecError` listing every offending field with what was expected.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import yaml

from provisioner.configure.topology import API_PORT, ETCD_CLIENT_PORT, ETCD_PEER_PORT
from provisioner.errors import ProvisionerError
from provisioner.infra.baremetal import load_inventory

__all__ = ["CLOUDS", "ClusterSpec", "EtcdSpec", "SpecError", "SshSpec", "load_spec", "spec_from_dict"]

CLOUDS = ("local", "baremetal", "vagrant", "gcp", "aws", "azure")
QUORUM_SIZES = (1, 3, 5)
_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")
# Ports the masters' own services hold on every address, so the virtual IP's HAProxy cannot listen there.
_MASTER_PORTS = {ETCD_CLIENT_PORT: "etcd", ETCD_PEER_PORT: "etcd peers", API_PORT: "the API servers"}


class SpecError(ProvisionerError):
    """Every problem found in a spec, each as `field.path: what is wrong (expected ...)`."""

    def __init__(self, problems: list[str], *, source: str) -> None:
        self.problems = problems
        lines = "\n".join(f"  - {p}" for p in problems)
        super().__init__(f"invalid cluster spec ({source}):\n{lines}",
                         hint="fix the fields above in the spec file or the matching command-line flags")


@dataclass(frozen=True)
class SshSpec:
    user: str = "root"
    key: Path = Path("~/.ssh/id_ed25519")  # private key; a key pair is generated per cluster when missing


@dataclass(frozen=True)
class EtcdSpec:
    placement: str = "stacked"  # "stacked": one member on every master; "external": on dedicated machines
    members: int | None = None  # defaults to the number of masters when stacked


@dataclass(frozen=True)
class ClusterSpec:
    """What the operator asks for.

    The operator's API endpoint: `api_endpoint` when given (host[:port] of a load balancer or DNS name the
    operator's machine reaches); else, on bare metal with `api_vip`, https://api_vip:api_vip_port when the
    inventory reaches the masters on their private addresses (then the operator shares their network); else a
    load balancer from the cloud's driver (the `haproxy` driver on the operator's loopback over each master's
    inventory `address`:`api_port`). `api_vip` (bare metal only): a free IPv4 address on the masters' private
    network; every master runs keepalived (VRRP) to hold it on one healthy master and HAProxy on
    `api_vip_port`, balancing over every master's API server; the API serving certificate names it.
    """

    name: str = "lab"
    cloud: str = "local"
    region: str = ""
    zone: str = ""
    masters: int = 3
    nodes: int = 2
    master_size: str = "small"
    node_size: str = "small"
    image: str = "debian-12"
    api_endpoint: str = ""  # host[:port] of a load balancer or virtual IP; chosen by the cloud when empty
    api_port: int = 6443
    api_vip: str = ""  # bare metal: virtual IPv4 address of the API, moved between masters by keepalived
    api_vip_port: int = 8443  # HAProxy on every master listens here (6443 is the API servers' own port)
    etcd: EtcdSpec = field(default_factory=EtcdSpec)
    ssh: SshSpec = field(default_factory=SshSpec)
    inventory: Path | None = None  # bare metal: hosts by address, user and key

    @property
    def etcd_members(self) -> int:
        return self.etcd.members if self.etcd.members is not None else self.masters


_NESTED = {"etcd": EtcdSpec, "ssh": SshSpec}


def _check_int(problems: list[str], path: str, value: Any, *, minimum: int, allowed: tuple[int, ...] = ()) -> None:
    if not isinstance(value, int) or isinstance(value, bool):
        problems.append(f"{path}: must be an integer, got {value!r}")
    elif allowed and value not in allowed:
        problems.append(f"{path}: must be one of {', '.join(map(str, allowed))} (an odd quorum), got {value}")
    elif value < minimum:
        problems.append(f"{path}: must be at least {minimum}, got {value}")


def _validate(spec: ClusterSpec) -> list[str]:
    problems: list[str] = []
    if not isinstance(spec.name, str) or not _DNS_LABEL.match(spec.name):
        problems.append(f"name: must be a DNS label (lower-case letters, digits, '-'), got {spec.name!r}")
    if spec.cloud not in CLOUDS:
        problems.append(f"cloud: must be one of {', '.join(CLOUDS)}, got {spec.cloud!r}")
    _check_int(problems, "masters", spec.masters, minimum=1, allowed=QUORUM_SIZES)
    _check_int(problems, "nodes", spec.nodes, minimum=0)
    _check_int(problems, "api_port", spec.api_port, minimum=1)
    if isinstance(spec.api_port, int) and spec.api_port > 65535:
        problems.append(f"api_port: must be at most 65535, got {spec.api_port}")
    if spec.etcd.placement not in ("stacked", "external"):
        problems.append(f"etcd.placement: must be 'stacked' or 'external', got {spec.etcd.placement!r}")
    if spec.etcd.members is not None:
        _check_int(problems, "etcd.members", spec.etcd.members, minimum=1, allowed=QUORUM_SIZES)
        if spec.etcd.placement == "stacked" and spec.etcd.members != spec.masters:
            problems.append(f"etcd.members: stacked etcd runs one member per master ({spec.masters}), "
                            f"got {spec.etcd.members}; drop the field or use placement: external")
    if spec.cloud == "baremetal" and spec.inventory is None:
        problems.append("inventory: required when cloud is baremetal (e.g. --inventory inventories/lab.yml)")
    if spec.inventory is not None and not Path(spec.inventory).expanduser().is_file():
        problems.append(f"inventory: file {spec.inventory} does not exist")
    if spec.cloud in ("gcp", "aws", "azure") and not spec.region:
        problems.append(f"region: required for cloud {spec.cloud}")
    _check_vip(problems, spec)
    return problems


def _check_vip(problems: list[str], spec: ClusterSpec) -> None:
    """The virtual IP must be a unicast IPv4 address nobody holds yet, on bare metal, with a port of its own."""
    _check_int(problems, "api_vip_port", spec.api_vip_port, minimum=1)
    if isinstance(spec.api_vip_port, int) and spec.api_vip_port > 65535:
        problems.append(f"api_vip_port: must be at most 65535, got {spec.api_vip_port}")
    taken = _MASTER_PORTS.get(spec.api_vip_port) if isinstance(spec.api_vip_port, int) else None
    if taken:
        problems.append(f"api_vip_port: {spec.api_vip_port} is taken on the masters by {taken}; pick a free port "
                        "such as 8443")
    if spec.api_vip == "":
        return
    try:
        vip = ipaddress.IPv4Address(spec.api_vip if isinstance(spec.api_vip, str) else "")
    except ipaddress.AddressValueError:
        problems.append(f"api_vip: must be an IPv4 address such as 10.88.3.250, got {spec.api_vip!r}")
        return
    if vip.is_loopback or vip.is_unspecified or vip.is_multicast or vip.is_link_local or vip.is_reserved:
        problems.append(f"api_vip: {vip} cannot be a virtual IP; pick a free unicast address on the masters' network")
    if spec.cloud != "baremetal":
        problems.append(f"api_vip: only on cloud baremetal (cloud {spec.cloud!r} gets its endpoint from its load "
                        "balancer); drop the field or set cloud: baremetal")
    if spec.inventory is not None and Path(spec.inventory).expanduser().is_file():
        try:
            hosts = load_inventory(Path(spec.inventory))
        except ProvisionerError:  # reported with its own hint when the cloud is opened
            return
        problems.extend(f"api_vip: {vip} is already the address of host {h.name} in {spec.inventory}; pick a free "
                        "address on the masters' network" for h in hosts if str(vip) in (h.address, h.private_address))


def spec_from_dict(raw: dict[str, Any], *, source: str = "spec") -> ClusterSpec:
    """Build and validate a spec from parsed YAML; unknown keys are errors, not silently ignored."""
    problems: list[str] = []
    known = {f.name: f for f in fields(ClusterSpec)}
    values: dict[str, Any] = {}
    for key, value in raw.items():
        if key not in known:
            problems.append(f"{key}: unknown field; known fields are {', '.join(sorted(known))}")
        elif key in _NESTED:
            nested_cls = _NESTED[key]
            nested_known = {f.name for f in fields(nested_cls)}
            if not isinstance(value, dict):
                problems.append(f"{key}: must be a mapping with some of {', '.join(sorted(nested_known))}")
                continue
            bad = sorted(set(value) - nested_known)
            problems.extend(f"{key}.{b}: unknown field; known fields are {', '.join(sorted(nested_known))}"
                            for b in bad)
            clean = {k: v for k, v in value.items() if k in nested_known}
            if key == "ssh" and "key" in clean:
                clean["key"] = Path(str(clean["key"]))
            values[key] = nested_cls(**clean)
        elif key == "inventory" and value is not None:
            values[key] = Path(str(value))
        else:
            values[key] = value
    spec = ClusterSpec(**values)
    problems.extend(_validate(spec))
    if problems:
        raise SpecError(problems, source=source)
    return spec


def load_spec(path: Path | None = None, *, overrides: dict[str, Any] | None = None) -> ClusterSpec:
    """Read `path` (optional), then apply flag `overrides` (None values mean 'not given')."""
    raw: dict[str, Any] = {}
    source = "flags"
    if path is not None:
        source = str(path)
        try:
            loaded = yaml.safe_load(Path(path).read_text())
        except FileNotFoundError:
            raise ProvisionerError(f"spec file {path} does not exist", hint="pass an existing file to --spec") from None
        except yaml.YAMLError as exc:
            raise ProvisionerError(f"spec file {path} is not valid YAML: {exc}",
                                   hint="check indentation and quoting") from None
        if loaded is not None and not isinstance(loaded, dict):
            raise SpecError([f"(top level): must be a mapping, got {type(loaded).__name__}"], source=source)
        raw = dict(loaded or {})
    raw.update({k: v for k, v in (overrides or {}).items() if v is not None})
    return spec_from_dict(raw, source=source)

