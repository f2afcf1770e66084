"""API errors as values: every failure a client sees is a `Status` object with a reason and a code.

Any module of the API server raises `ApiError`; the HTTP layer turns it into the JSON `Status`
that kubectl and the official client understand.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

__all__ = ["ApiError", "FieldError", "invalid", "not_found", "status_body"]


@dataclass(frozen=True)
class FieldError:
    """One offending field: `path` like `spec.containers[0].image`, `type` a Kubernetes cause type."""

    path: str
    message: str
    type: str = "FieldValueInvalid"  # FieldValueRequired, FieldValueNotSupported, FieldValueDuplicate...

    def __str__(self) -> str:
        return f"{self.path}: {self.message}"


@dataclass
class ApiError(Exception):
    code: int
    reason: str
    message: str
    details: dict[str, Any] = field(default_factory=dict)

    def __str__(self) -> str:
        return self.message

    def to_status(self) -> dict[str, Any]:
        return status_body(code=self.code, reason=self.reason, message=self.message, details=self.details)


def status_body(*, code: int, reason: str, message: str, details: dict[str, Any] | None = None) -> dict[str, Any]:
    body: dict[str, Any] = {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Success" if 200 <= code < 300 else "Failure",
        "message": message,
        "reason": reason,
        "code": code,
    }
    if details:
        body["details"] = details
    return body


def not_found(*, group: str, plural: str, name: str) -> ApiError:
    res = f"{plural}.{group}" if group else plural
    return ApiError(404, "NotFound", f'{res} "{name}" not found',
                    {"name": name, "group": group, "kind": plural})


def invalid(*, group: str, kind: str, name: str, errors: list[FieldError]) -> ApiError:
    gk = f"{kind}.{group}" if group else kind
    summary = ", ".join(str(e) for e in errors)
    return ApiError(
        422, "Invalid", f'{gk} "{name}" is invalid: {summary}',
        {"name": name, "group": group, "kind": kind,
         "causes": [{"reason": e.type, "message": e.message, "field": e.path} for e in errors]},
    )
