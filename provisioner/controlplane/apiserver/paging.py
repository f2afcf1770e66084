"""The opaque `continue` token of paged lists: the snapshot revision and the last key returned.

Every page of one list reads etcd at the first page's revision, so pages are consistent; once that
revision is compacted the token is too old (410 Expired).
"""

from __future__ import annotations

import base64
import binascii
import json

from provisioner.controlplane.apiserver.status import ApiError

__all__ = ["decode_continue", "encode_continue"]


def encode_continue(*, revision: int, start_after: str) -> str:
    raw = json.dumps({"v": "1", "rv": revision, "start": start_after}, separators=(",", ":"))
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def decode_continue(token: str, *, prefix: str) -> tuple[int, str]:
    """(revision, last key) of a token issued for a list under `prefix`; 400 for anything else."""
    try:
        raw = json.loads(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))
        revision, start = int(raw["rv"]), str(raw["start"])
    except (ValueError, KeyError, TypeError, binascii.Error):
        raise ApiError(400, "BadRequest", "invalid continue token: it was not issued by this API server") from None
    if not start.startswith(prefix) or revision <= 0:
        raise ApiError(400, "BadRequest", "invalid continue token: it belongs to a different list")
    return revision, start
