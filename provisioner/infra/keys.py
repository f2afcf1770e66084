"""SSH keys the local cloud makes: per-VM host keys, and an operator key for callers that bring none."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

__all__ = ["KeyPair", "ensure_operator_key", "new_key_pair"]


@dataclass(frozen=True)
class KeyPair:
    """An ed25519 key pair in OpenSSH formats (paramiko and OpenSSH both read them)."""

    private_openssh: str
    public_openssh: str


def new_key_pair(comment: str = "") -> KeyPair:
    key = Ed25519PrivateKey.generate()
    private = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.OpenSSH, serialization.NoEncryption()
    ).decode()
    public = key.public_key().public_bytes(serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH)
    return KeyPair(private_openssh=private, public_openssh=(public.decode() + f" {comment}").strip())


def ensure_operator_key(path: Path) -> str:
    """Create `path` (private, 0600) and `path.pub` once; return the public key."""
    pub = path.with_name(path.name + ".pub")
    if not path.is_file():
        pair = new_key_pair("provisioner-local-cloud")
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + ".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(pair.private_openssh)
        pub.write_text(pair.public_openssh + "\n")
        os.replace(tmp, path)
    return pub.read_text().strip()
