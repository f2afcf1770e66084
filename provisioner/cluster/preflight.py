"""Checks before configuring: every machine is reachable, runs a supported OS, has the cluster's ports free,
a clock close to the operator's (certificates are dated by the operator's clock), and a disk whose fsync
latency etcd can live with. One SSH connection and one shell command per machine, all machines in parallel.
"""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from provisioner.cluster.machines import Machine
from provisioner.cluster.remote import connect, run
from provisioner.configure.topology import API_PORT, ETCD_CLIENT_PORT, ETCD_PEER_PORT
from provisioner.errors import ProvisionerError

__all__ = ["FSYNC_WARN_MS", "Finding", "parse_probe", "preflight"]

SUPPORTED_OS = ("debian 12",)
FSYNC_WARN_MS = 10.0
MAX_CLOCK_SKEW_S = 60.0  # certificates are back-dated 5 minutes; beyond a minute something is wrong
WARN_CLOCK_SKEW_S = 2.0
_PORTS = {"master": (ETCD_CLIENT_PORT, ETCD_PEER_PORT, API_PORT), "node": (API_PORT, 10250)}
_WRITES = 20

_PROBE = f"""\
. /etc/os-release; echo "os=$ID $VERSION_ID"
echo "clock=$(date +%s.%N)"
if [ -f /var/lib/provisioner/bundle.sha256 ]; then echo installed=yes; else echo installed=no; fi
echo "listening=$(ss -Hltn | awk '{{print $4}}' | sed 's/.*://' | sort -un | tr '\\n' ' ')"
start=$(date +%s%N)
dd if=/dev/zero of=/var/tmp/pv-fsync bs=2k count={_WRITES} oflag=dsync 2>/dev/null
end=$(date +%s%N); rm -f /var/tmp/pv-fsync
echo "$start $end" | awk '{{printf "fsync_ms=%.2f\\n", ($2 - $1) / 1e6 / {_WRITES}}}'
"""


@dataclass(frozen=True)
class Finding:
    machine: str
    severity: str  # "error" or "warning"
    message: str


def parse_probe(machine: Machine, output: str, *, sent: float, received: float,
                master_ports: tuple[int, ...] = ()) -> list[Finding]:
    """Judge one machine's probe output; `sent`/`received` bracket the command on the operator's clock;
    `master_ports`: what masters must also have free (the virtual IP's port)."""
    values = dict(line.split("=", 1) for line in output.splitlines() if "=" in line)
    findings: list[Finding] = []

    def add(severity: str, message: str) -> None:
        findings.append(Finding(machine.name, severity, message))

    if values.get("os", "") not in SUPPORTED_OS:
        add("error", f"unsupported OS {values.get('os', 'unknown')!r} (supported: {', '.join(SUPPORTED_OS)})")
    skew = float(values.get("clock", "0")) - (sent + received) / 2
    if abs(skew) > MAX_CLOCK_SKEW_S:
        add("error", f"clock is {skew:+.1f} s off the operator's; certificates would not be valid there")
    elif abs(skew) > WARN_CLOCK_SKEW_S + (received - sent) / 2:
        add("warning", f"clock is {skew:+.1f} s off the operator's; enable time sync (chrony)")
    if values.get("installed") == "no":
        wanted = (*_PORTS[machine.role], *(master_ports if machine.role == "master" else ()))
        busy = set(values.get("listening", "").split()) & {str(p) for p in wanted}
        if busy:
            add("error", f"port(s) {', '.join(sorted(busy))} already in use by another service")
    fsync_ms = float(values.get("fsync_ms", "nan"))
    if machine.role == "master" and not fsync_ms <= FSYNC_WARN_MS:
        add("warning", f"disk fsync takes {fsync_ms:.1f} ms (etcd wants under {FSYNC_WARN_MS:.0f} ms); "
                       "expect slow writes and leader elections")
    return findings


def _probe(machine: Machine, master_ports: tuple[int, ...]) -> list[Finding]:
    with connect(machine.name, machine.ssh) as conn:
        sent = time.time()
        code, out, err = run(conn, _PROBE)
        received = time.time()
    if code != 0:
        return [Finding(machine.name, "error", f"probe failed (exit {code}): {err.strip()[-300:]}")]
    return parse_probe(machine, out, sent=sent, received=received, master_ports=master_ports)


def preflight(machines: tuple[Machine, ...], *, master_ports: tuple[int, ...] = ()) -> list[Finding]:
    """Warnings come back; any error raises with every finding listed."""
    with ThreadPoolExecutor(max_workers=max(1, len(machines))) as pool:
        findings = [f for result in pool.map(lambda m: _probe(m, master_ports), machines) for f in result]
    errors = [f for f in findings if f.severity == "error"]
    if errors:
        raise ProvisionerError("preflight failed:\n" + "\n".join(f"  - {f.machine}: {f.message}" for f in errors),
                               hint="fix these machines, then run `provision up` again")
    return findings
