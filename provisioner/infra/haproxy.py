"""libcloud load-balancer provider `haproxy`: one real HAProxy process per balancer, listening on loopback.

A balancer is a directory under `<state root>/balancers/<name>/` (balancer.json, haproxy.cfg, pidfile, admin
socket). Changing members re-renders the config, validates it (`haproxy -c`) and reloads with `-sf <old pid>`,
so established connections finish on the old process while new ones reach the new member list. Members must
be loopback addresses (VM ports forwarded to 127.0.0.1): host traffic never leaves 127.0.0.0/8.
"""

from __future__ import annotations

import ipaddress
import shutil
import socket
import subprocess
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

from libcloud.loadbalancer.base import Algorithm, Driver, LoadBalancer, Member
from libcloud.loadbalancer.types import State

from provisioner.errors import ProvisionerError
from provisioner.infra.cloudstate import default_state_root
from provisioner.infra.haproxy_config import ALGORITHMS, BalancerConfig, render
from provisioner.infra.hostproc import free_port, process_matches, stop_process
from provisioner.state import read_json, write_json

__all__ = ["HaproxyLBDriver"]

_START_TIMEOUT_S = 10.0


@dataclass(frozen=True)
class _Balancer:
    name: str
    address: str
    port: int
    protocol: str
    algorithm: str
    members: tuple[tuple[str, int], ...]
    health_path: str = "/"


class HaproxyLBDriver(Driver):  # type: ignore[misc]
    """Balancers are HAProxy processes on this host; `extra["members_status"]` shows health-check results."""

    name = "HAProxy on loopback"
    website = "https://www.haproxy.org/"
    _ALGORITHM_TO_VALUE_MAP = {getattr(Algorithm, k): v for k, v in ALGORITHMS.items()}  # values: HAProxy keywords
    _VALUE_TO_ALGORITHM_MAP = {v: k for k, v in _ALGORITHM_TO_VALUE_MAP.items()}

    def __init__(
        self,
        key: str = "haproxy",
        secret: str | None = None,
        secure: bool = True,
        host: str | None = None,
        port: int | None = None,
        *,
        ex_state_dir: str | Path | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(key=key, secret=secret, secure=secure, host=host, port=port, **kwargs)
        self._root = (Path(ex_state_dir) if ex_state_dir else default_state_root()) / "balancers"

    def list_protocols(self) -> list[str]:
        return ["tcp", "http"]

    def list_balancers(self) -> list[LoadBalancer]:
        return [self._to_balancer(self._load(p.parent.name)) for p in sorted(self._root.glob("*/balancer.json"))]

    def get_balancer(self, balancer_id: str) -> LoadBalancer:
        return self._to_balancer(self._load(balancer_id))

    def create_balancer(  # type: ignore[override]
        self,
        name: str,
        port: int,
        protocol: str,
        algorithm: int,
        members: list[Member],
        ex_address: str = "127.0.0.1",
        ex_health_path: str = "/",
    ) -> LoadBalancer:
        """Start HAProxy on `ex_address:port` (port 0 picks a free one) in front of `members`."""
        if (self._root / name / "balancer.json").is_file():
            raise ProvisionerError(f"a balancer named {name!r} already exists", hint="destroy it or pick a name")
        if protocol not in self.list_protocols():
            raise ProvisionerError(f"unsupported protocol {protocol!r}", hint="use tcp or http")
        _require_loopback(ex_address)
        record = _Balancer(
            name=name, address=ex_address, port=port or free_port(ex_address), protocol=protocol,
            algorithm=self._algorithm_to_value(algorithm), members=tuple(_member_key(m) for m in members),
            health_path=ex_health_path,
        )  # fmt: skip
        try:
            self._apply(record)
        except BaseException:
            self._destroy(name)
            raise
        return self._to_balancer(record)

    def destroy_balancer(self, balancer: LoadBalancer) -> bool:
        self._load(balancer.id)
        self._destroy(balancer.id)
        return True

    def balancer_attach_member(self, balancer: LoadBalancer, member: Member) -> Member:
        record = self._load(balancer.id)
        key = _member_key(member)
        if key not in record.members:
            self._apply(replace(record, members=(*record.members, key)))
        return Member(id=f"{key[0]}:{key[1]}", ip=key[0], port=key[1], balancer=balancer)

    def balancer_detach_member(self, balancer: LoadBalancer, member: Member) -> bool:
        record = self._load(balancer.id)
        key = (member.ip, int(member.port))
        if key not in record.members:
            raise ProvisionerError(f"{key[0]}:{key[1]} is not a member of balancer {record.name}")
        self._apply(replace(record, members=tuple(m for m in record.members if m != key)))
        return True

    def balancer_list_members(self, balancer: LoadBalancer) -> list[Member]:
        record = self._load(balancer.id)
        status = self._member_status(record)
        return [
            Member(id=f"{ip}:{port}", ip=ip, port=port, balancer=balancer, extra={"status": status.get(f"{ip}:{port}")})
            for ip, port in record.members
        ]

    # -- internals -------------------------------------------------------------------------------------------

    def _dir(self, name: str) -> Path:
        return self._root / name

    def _load(self, name: str) -> _Balancer:
        path = self._dir(name) / "balancer.json"
        if not path.is_file():
            raise ProvisionerError(f"no balancer named {name!r}")
        data = read_json(path)
        return _Balancer(**{**data, "members": tuple((ip, int(port)) for ip, port in data["members"])})

    def _config_of(self, record: _Balancer) -> BalancerConfig:
        return BalancerConfig(
            name=record.name, address=record.address, port=record.port, protocol=record.protocol,
            algorithm=record.algorithm, members=record.members,
            admin_socket=self._dir(record.name) / "admin.sock", health_path=record.health_path,
        )  # fmt: skip

    def _apply(self, record: _Balancer) -> None:
        """Write, check and (re)load the config; only a config HAProxy accepted is recorded."""
        directory = self._dir(record.name)
        directory.mkdir(parents=True, exist_ok=True)
        cfg, pidfile = directory / "haproxy.cfg", directory / "haproxy.pid"
        candidate = directory / "haproxy.cfg.new"
        candidate.write_text(render(self._config_of(record)))
        check = subprocess.run(["haproxy", "-c", "-q", "-f", str(candidate)], capture_output=True, text=True)
        if check.returncode != 0:
            candidate.unlink()
            raise ProvisionerError(f"HAProxy rejected the config for {record.name}: {check.stderr.strip()}")
        candidate.replace(cfg)
        old = self._pid(record.name)
        argv = ["haproxy", "-D", "-f", str(cfg), "-p", str(pidfile)] + (["-sf", str(old)] if old else [])
        done = subprocess.run(argv, capture_output=True, text=True, stdin=subprocess.DEVNULL, timeout=30)
        deadline = time.monotonic() + _START_TIMEOUT_S
        while not (self._pid(record.name) not in (0, old) and (directory / "admin.sock").exists()):
            if done.returncode != 0 or time.monotonic() > deadline:
                raise ProvisionerError(
                    f"HAProxy for balancer {record.name} did not start: {done.stderr.strip()}",
                    hint=f"is {record.address}:{record.port} already in use?",
                )
            time.sleep(0.02)
        if old:  # it soft-stops (at most `hard-stop-after`); remembered so destroy can end it sooner
            with (directory / "haproxy.oldpids").open("a") as f:
                f.write(f"{old}\n")
        write_json(directory / "balancer.json", asdict(record))

    def _pid(self, name: str) -> int:
        """The running HAProxy of this balancer (0 if none); -p lists one PID per line, the first is ours."""
        pidfile = self._dir(name) / "haproxy.pid"
        try:
            pid = int(pidfile.read_text().split()[0])
        except (OSError, IndexError, ValueError):
            return 0
        return pid if process_matches(pid, self._dir(name) / "haproxy.cfg") else 0

    def _destroy(self, name: str) -> None:
        oldpids = self._dir(name) / "haproxy.oldpids"
        previous = [int(p) for p in oldpids.read_text().split()] if oldpids.is_file() else []
        for pid in [self._pid(name), *previous]:
            stop_process(pid, self._dir(name) / "haproxy.cfg")
        shutil.rmtree(self._dir(name), ignore_errors=True)

    def _member_status(self, record: _Balancer) -> dict[str, str]:
        """Health-check status per member ("UP", "DOWN", "MAINT", ...) from the admin socket's `show stat`."""
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
                s.settimeout(5)
                s.connect(str(self._dir(record.name) / "admin.sock"))
                s.sendall(b"show stat\n")
                data = b""
                while chunk := s.recv(65536):
                    data += chunk
        except OSError:
            return {}
        rows = [line.split(",") for line in data.decode().splitlines() if line and not line.startswith("#")]
        return {
            r[1]: r[17].split(" ")[0] for r in rows if len(r) > 17 and r[0] == f"{record.name}-members" and ":" in r[1]
        }

    def _to_balancer(self, record: _Balancer) -> LoadBalancer:
        running = self._pid(record.name) != 0
        extra = {
            "protocol": record.protocol,
            "algorithm": record.algorithm,
            "members_status": self._member_status(record) if running else {},
            "config": str(self._dir(record.name) / "haproxy.cfg"),
        }
        return LoadBalancer(
            id=record.name, name=record.name, state=State.RUNNING if running else State.ERROR, ip=record.address,
            port=record.port, driver=self, extra=extra,
        )  # fmt: skip


def _member_key(member: Member) -> tuple[str, int]:
    _require_loopback(member.ip)
    return (member.ip, int(member.port))


def _require_loopback(address: str) -> None:
    if not ipaddress.ip_address(address).is_loopback:
        raise ProvisionerError(
            f"{address} is not a loopback address",
            hint="local balancers front VM ports forwarded to 127.0.0.1 (Node.extra['ports'])",
        )
