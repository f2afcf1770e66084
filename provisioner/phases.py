"""Per-phase wall time: the breakdown every long command (`dev up`, `up`) reports and prints."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

__all__ = ["PhaseTime", "timed_phase"]


@dataclass(frozen=True)
class PhaseTime:
    name: str
    seconds: float
    skipped: bool = False  # finished by an earlier, failed run that this one resumed past


@contextmanager
def timed_phase(phases: list[PhaseTime], name: str, progress: Callable[[str], None]) -> Iterator[None]:
    """Announce phase `name`, then record how long its block took (not when it raises: the run failed there)."""
    progress(name)
    started = time.monotonic()
    yield
    phases.append(PhaseTime(name, time.monotonic() - started))
