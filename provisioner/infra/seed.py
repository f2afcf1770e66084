"""A VM's identity as a seed disk: a tar archive the guest's `vm-seed.service` unpacks over `/`.

Writing a tar file takes milliseconds and needs no root, no loop device and no guest tools, which is why
identity travels this way (see `guest.py`) rather than by editing the overlay before boot.
"""

from __future__ import annotations

import io
import tarfile
from dataclasses import dataclass
from pathlib import Path

from provisioner.infra.keys import KeyPair

__all__ = ["Identity", "write_seed"]


@dataclass(frozen=True)
class Identity:
    hostname: str
    authorized_key: str
    lab_address: str  # CIDR, e.g. 10.88.1.10/24
    lab_mac: str
    host_key: KeyPair


def write_seed(path: Path, identity: Identity) -> None:
    """Write the seed archive; its files land in the guest with the modes given here, owned by root."""
    lab_network = (
        f"[Match]\nMACAddress={identity.lab_mac}\n\n[Network]\nAddress={identity.lab_address}\n"
        "LinkLocalAddressing=no\nIPv6AcceptRA=no\n"
    )
    entries: list[tuple[str, str | None, int]] = [
        ("etc/hostname", f"{identity.hostname}\n", 0o644),
        ("etc/hosts", f"127.0.0.1 localhost\n127.0.1.1 {identity.hostname}\n", 0o644),
        ("etc/ssh/ssh_host_ed25519_key", identity.host_key.private_openssh, 0o600),
        ("etc/ssh/ssh_host_ed25519_key.pub", identity.host_key.public_openssh + "\n", 0o644),
        ("root/.ssh", None, 0o700),
        ("root/.ssh/authorized_keys", identity.authorized_key.strip() + "\n", 0o600),
        ("etc/systemd/network/10-lab.network", lab_network, 0o644),
    ]
    with tarfile.open(path, "w", format=tarfile.GNU_FORMAT) as tar:
        for name, text, mode in entries:
            info = tarfile.TarInfo(name)
            info.mode = mode
            if text is None:
                info.type = tarfile.DIRTYPE
                tar.addfile(info)
            else:
                data = text.encode()
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))
