"""The cluster spec: one YAML file, validated all at once, with defaults an operator would expect.

`load_spec` reads the file, applies command-line overrides on top, and either returns a frozen
`ClusterSpec` or raises one `SpecError` listing every offending field with what was expected.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import yaml

from provisioner.errors import ProvisionerError

__all__ = ["CLOUDS", "ClusterSpec", "EtcdSpec", "SpecError", "SshSpec", "load_spec", "spec_from_dict"]

CLOUDS = ("local", "baremetal", "vagrant", "gcp", "aws", "azure")
QUORUM_SIZES = (1, 3, 5)
_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")


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
    return problems


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

