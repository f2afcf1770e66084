"""systemd units of the cluster's services, grouped by the role that starts them.

Every service is a plain `Type=simple` unit that systemd restarts: an etcd member must not block its own
start waiting for a quorum that the other members (started in parallel by Ansible) have not formed yet,
and a crashed process comes back without the provisioner. Unit names carry a `provisioner-` prefix, so an
uninstall knows exactly what to stop and remove.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["GROUPS", "Unit", "render_unit"]

# Start order; a role starts the units of its groups. The API server starts alone, before the controllers
# and the scheduler that would only compete with it for the CPU while retrying to reach it.
GROUPS = ("etcd", "apiserver", "control-plane", "loadbalancer", "node")


@dataclass(frozen=True)
class Unit:
    name: str  # e.g. "provisioner-etcd.service"
    group: str  # one of GROUPS
    description: str
    argv: tuple[str, ...]
    prepare: tuple[str, ...] = ()  # ExecStartPre: writes what only the host knows (keepalived's interface)
    runtime_directory: str = ""  # /run/<name>, created on start and removed on stop: leaves nothing behind

    @property
    def path(self) -> str:
        return f"/etc/systemd/system/{self.name}"


def render_unit(unit: Unit) -> str:
    if unit.group not in GROUPS:
        raise ValueError(f"unit {unit.name}: unknown group {unit.group!r}")
    command = " \\\n    ".join(unit.argv)
    extra = f"RuntimeDirectory={unit.runtime_directory}\n" if unit.runtime_directory else ""
    extra += f"ExecStartPre={' '.join(unit.prepare)}\n" if unit.prepare else ""
    return f"""\
[Unit]
Description={unit.description}
Wants=network-online.target
After=network-online.target

[Service]
Type=simple
{extra}ExecStart={command}
Restart=always
RestartSec=2
LimitNOFILE=65536

[Install]
WantedBy=multi-user.target
"""
