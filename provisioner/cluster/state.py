"""Where a cluster on real machines keeps what the operator's machine knows: `$PROVISIONER_HOME/clusters/<name>/`.

`state.json` holds the spec it was created from, the phases the current `up` has finished (so a failed
`up` resumes after the last one) and the API endpoint. Certificates, bundles, the generated inventory and
Ansible's work directory sit next to it. Written only by `up`/`down`, each under the cluster's lock.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import fasteners

from provisioner.errors import ProvisionerError
from provisioner.spec import ClusterSpec, spec_from_dict
from provisioner.state import cluster_dir, existing_clusters, provisioner_home, read_json, write_json

__all__ = ["ClusterFiles", "cluster_files", "load_state", "locked", "save", "saved_spec", "spec_to_dict"]


@dataclass(frozen=True)
class ClusterFiles:
    root: Path

    @property
    def state_file(self) -> Path:
        return self.root / "state.json"

    @property
    def pki(self) -> Path:
        return self.root / "pki"

    @property
    def bundles(self) -> Path:
        return self.root / "bundles"

    @property
    def inventory(self) -> Path:
        return self.root / "inventory.yml"

    @property
    def known_hosts(self) -> Path:
        return self.root / "known_hosts"

    @property
    def ansible(self) -> Path:
        return self.root / "ansible"

    @property
    def admin_kubeconfig(self) -> Path:
        return self.root / "admin.kubeconfig"


def _clusters_home(home: Path | None) -> Path:
    return (home or provisioner_home()) / "clusters"


def cluster_files(name: str, *, home: Path | None = None) -> ClusterFiles:
    return ClusterFiles(cluster_dir(name, home=_clusters_home(home)))


@contextmanager
def locked(files: ClusterFiles) -> Iterator[None]:
    """One `up`/`down` per cluster at a time."""
    files.root.parent.mkdir(parents=True, exist_ok=True)
    lock = fasteners.InterProcessLock(str(files.root.parent / f".{files.root.name}.lock"))
    if not lock.acquire(blocking=False):
        raise ProvisionerError(f"another `provision` command is working on cluster {files.root.name!r}",
                               hint="wait for it to finish")
    try:
        yield
    finally:
        lock.release()


def load_state(name: str, *, home: Path | None = None) -> tuple[ClusterFiles, dict[str, Any]]:
    files = cluster_files(name, home=home)
    if not files.state_file.is_file():
        known = existing_clusters(home=_clusters_home(home), state_file="state.json")
        raise ProvisionerError(f"no cluster named {name!r}",
                               hint=f"existing clusters: {', '.join(known)}" if known else "create one with "
                                    "`provision up`")
    return files, read_json(files.state_file)


def spec_to_dict(spec: ClusterSpec) -> dict[str, Any]:
    return {k: (str(v) if isinstance(v, Path) else v) for k, v in dataclasses.asdict(spec).items()} | {
        "ssh": {"user": spec.ssh.user, "key": str(spec.ssh.key)}}


def saved_spec(state: dict[str, Any]) -> ClusterSpec:
    return spec_from_dict(state["spec"], source="saved cluster state")


def save(files: ClusterFiles, state: dict[str, Any]) -> None:
    write_json(files.state_file, state)
