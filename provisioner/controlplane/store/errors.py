"""Store failures as types, so the API server can map each onto a Kubernetes Status reason."""

from __future__ import annotations

__all__ = ["AlreadyExists", "Compacted", "Conflict", "KeyNotFound", "StoreError", "Unavailable"]


class StoreError(Exception):
    """Base of every failure the store reports."""


class AlreadyExists(StoreError):
    """`create` found the key already present."""


class KeyNotFound(StoreError):
    """The key is not (or no longer) present."""


class Conflict(StoreError):
    """A compare-and-swap lost: the key changed since `expected_rev`."""

    def __init__(self, key: str, current_rev: int) -> None:
        super().__init__(f"{key} changed (now at revision {current_rev})")
        self.key = key
        self.current_rev = current_rev


class Compacted(StoreError):
    """The requested revision was compacted away; the caller must re-list."""

    def __init__(self, revision: int, compact_revision: int) -> None:
        super().__init__(f"revision {revision} is compacted (oldest kept: {compact_revision})")
        self.revision = revision
        self.compact_revision = compact_revision


class Unavailable(StoreError):
    """etcd could not be reached or had no leader, even after retries."""
