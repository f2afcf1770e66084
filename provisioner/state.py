"""Where the provisioner keeps what it knows about clusters: `$PROVISIONER_HOME/<name>/`.

Every cluster gets its own directory (certificates, data, logs, a JSON state file). The home defaults
to `~/.local/state/provisioner` so that nothing a cluster writes ends up in the source tree.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any

from provisioner.errors import ProvisionerError

__all__ = ["cluster_dir", "existing_clusters", "provisioner_home", "read_json", "validate_cluster_name", "write_json"]

_NAME = re.compile(r"^[a-z0-9]([-a-z0-9]{0,38}[a-z0-9])?$")


def provisioner_home() -> Path:
    """`$PROVISIONER_HOME`, or `~/.local/state/provisioner` when it is unset or empty."""
    env = os.environ.get("PROVISIONER_HOME", "")
    return Path(env).expanduser().resolve() if env else Path.home() / ".local" / "state" / "provisioner"


def validate_cluster_name(name: str) -> str:
    """Cluster names become directory names, certificate names and etcd tokens: keep them DNS labels."""
    if not _NAME.match(name):
        raise ProvisionerError(
            f"invalid cluster name {name!r}",
            hint="use 1-40 lowercase letters, digits or '-', starting and ending with a letter or digit",
        )
    return name


def cluster_dir(name: str, *, home: Path | None = None) -> Path:
    return (home or provisioner_home()) / validate_cluster_name(name)


def existing_clusters(*, home: Path | None = None, state_file: str) -> list[str]:
    """Names of the clusters under `home` that have `state_file` (sorted)."""
    root = home or provisioner_home()
    if not root.is_dir():
        return []
    return sorted(p.name for p in root.iterdir() if (p / state_file).is_file())


def read_json(path: Path) -> dict[str, Any]:
    hint = "restore it, or remove the cluster directory"
    try:
        data = json.loads(path.read_text())
    except json.JSONDecodeError as e:
        raise ProvisionerError(f"{path} is not valid JSON: {e}", hint=hint) from e
    if not isinstance(data, dict):
        raise ProvisionerError(f"{path} does not hold a JSON object", hint=hint)
    return data


def write_json(path: Path, data: dict[str, Any]) -> None:
    """Write through a temporary file and rename, so a crash never leaves half a state file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")
    os.replace(tmp, path)
