"""The one error family the CLI knows how to show: a message for the operator and a hint to fix it."""

from __future__ import annotations

__all__ = ["ProvisionerError"]


class ProvisionerError(Exception):
    """A failure the operator can act on; `cli.py` prints `message` and `hint`, never a traceback."""

    def __init__(self, message: str, *, hint: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return f"{self.message}\n  hint: {self.hint}" if self.hint else self.message
