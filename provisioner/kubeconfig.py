"""Kubeconfig files for kubectl and the Python client: the admin's, and one per issued user.

Certificates and keys are embedded (base64 `*-data` fields) so a kubeconfig keeps working when
copied to another machine or when the cluster's state directory moves. Files are private (0600) and
replaced atomically, so a concurrent kubectl never reads half a file.
"""

from __future__ import annotations

import base64
import os
import re
from pathlib import Path

import yaml

from provisioner.errors import ProvisionerError
from provisioner.pki import CertificateAuthority

__all__ = ["issue_user_kubeconfig", "write_kubeconfig"]

# Names end up in certificate subjects, file names and RBAC subjects: printable, no separators.
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:@-]*")


def _b64(path: Path) -> str:
    return base64.b64encode(path.read_bytes()).decode("ascii")


def write_kubeconfig(
    path: Path, *, cluster_name: str, server: str, ca_file: Path, cert_file: Path, key_file: Path, user: str
) -> Path:
    """Write a kubeconfig whose current context is `user@cluster_name` against `server`; returns `path`."""
    context = f"{user}@{cluster_name}"
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": cluster_name,
                      "cluster": {"server": server, "certificate-authority-data": _b64(ca_file)}}],
        "users": [{"name": user,
                   "user": {"client-certificate-data": _b64(cert_file), "client-key-data": _b64(key_file)}}],
        "contexts": [{"name": context, "context": {"cluster": cluster_name, "user": user}}],
        "current-context": context,
        "preferences": {},
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        yaml.safe_dump(config, f, sort_keys=False)
    os.replace(tmp, path)
    return path


def _check_name(value: str, *, flag: str) -> None:
    if not _NAME.fullmatch(value):
        raise ProvisionerError(
            f"{flag} {value!r} is not a usable name",
            hint=f"pass {flag} a name that starts with a letter or digit and uses only letters, digits and "
                 "'.', '_', '-', ':', '@' (no spaces, '/' or ','), e.g. alice or dev-team",
        )


def issue_user_kubeconfig(
    *, ca: CertificateAuthority, directory: Path, cluster_name: str, server: str, user: str,
    groups: tuple[str, ...],
) -> Path:
    """Issue a client certificate (CN=user, O=groups) from `ca` and write `<directory>/users/<user>.kubeconfig`.

    The certificate lives next to the CA as `user-<user>.crt`; asking again with the same groups
    reuses it, and other groups re-issue it (the old certificate stays valid until it expires).
    """
    _check_name(user, flag="--user")
    for group in groups:
        _check_name(group, flag="--group")
    issued = ca.issue(f"user-{user}", common_name=user, organizations=tuple(dict.fromkeys(groups)), client=True)
    return write_kubeconfig(
        directory / "users" / f"{user}.kubeconfig", cluster_name=cluster_name, server=server,
        ca_file=ca.cert_file, cert_file=issued.cert_file, key_file=issued.key_file, user=user,
    )
