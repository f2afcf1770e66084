"""How one API server process is told where to listen, which certificates to use and where etcd is.

The provisioner renders this file (YAML) for every master; `python -m provisioner.controlplane.apiserver
--config FILE` reads it.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from pathlib import Path

import yaml

__all__ = ["ApiServerConfig"]


@dataclass(frozen=True)
class ApiServerConfig:
    bind_address: str
    port: int
    tls_cert_file: Path
    tls_key_file: Path
    client_ca_file: Path  # CA that signs client certificates (x509 authentication)
    etcd_endpoints: tuple[str, ...]  # "host:port" of every etcd member
    etcd_ca_file: Path
    etcd_cert_file: Path
    etcd_key_file: Path
    token_file: Path | None = None  # CSV lines: token,user,uid,"group1,group2" (kube-apiserver format)
    server_name: str = "apiserver"  # identifies this instance in logs and Leases
    service_cidr: str = "10.96.0.0/12"  # Service cluster IPs; the first address goes to `default/kubernetes`
    advertise_address: str = ""  # where clients reach this server (the `kubernetes` Endpoints); default bind_address
    # Client certificate presented to agents when proxying `pods/log` (kube-apiserver's --kubelet-client-certificate);
    # agents refuse connections without one, so without it `kubectl logs` fails.
    kubelet_client_cert_file: Path | None = None
    kubelet_client_key_file: Path | None = None

    @classmethod
    def load(cls, path: Path) -> ApiServerConfig:
        raw = yaml.safe_load(path.read_text()) or {}
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(raw) - known)
        if unknown:
            raise ValueError(f"{path}: unknown keys {unknown}; expected some of {sorted(known)}")
        paths = {"tls_cert_file", "tls_key_file", "client_ca_file", "etcd_ca_file", "etcd_cert_file",
                 "etcd_key_file", "token_file",
                 "kubelet_client_cert_file", "kubelet_client_key_file"}
        values = {k: (Path(v) if k in paths and v is not None else v) for k, v in raw.items()}
        values["etcd_endpoints"] = tuple(values.get("etcd_endpoints", ()))
        values["port"] = int(values["port"])
        return cls(**values)

    def dumps(self) -> str:
        data = {f.name: getattr(self, f.name) for f in fields(self)}
        data = {k: (str(v) if isinstance(v, Path) else list(v) if isinstance(v, tuple) else v)
                for k, v in data.items()}
        return yaml.safe_dump(data, sort_keys=False)

    def dump(self, path: Path) -> None:
        path.write_text(self.dumps())
