"""What the benches share: a throwaway dev cluster that is always torn down, and nearest-rank percentiles."""

from __future__ import annotations

import shutil
import tempfile
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from provisioner.dev import UpReport, dev_down, dev_up

__all__ = ["percentile", "throwaway_dev_cluster"]


@contextmanager
def throwaway_dev_cluster(
    *, prefix: str, masters: int, report: Callable[[str], None] = lambda _: None
) -> Iterator[tuple[UpReport, Path, str]]:
    """A dev cluster in a temporary home: yields (up report, home, name); purged on the way out, even on failure."""
    home = Path(tempfile.mkdtemp(prefix=prefix))
    name = f"bench-{uuid.uuid4().hex[:6]}"
    try:
        yield dev_up(name=name, masters=masters, home=home, report=report), home, name
    finally:
        if (home / name / "cluster.json").exists():
            dev_down(name=name, purge=True, home=home)
        shutil.rmtree(home, ignore_errors=True)


def percentile(values: list[float], q: float) -> float:
    """Nearest-rank percentile for q in [0, 1]; NaN when there are no values."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else float("nan")
