"""Kubernetes resource quantities ("100m", "1.5Gi", "2e3"), parsed exactly into Decimals.

Shared by API validation (a quantity must parse) and by the scheduler (it adds requests up), so the
arithmetic is exact and never rounds through floats.
"""

from __future__ import annotations

import re
from decimal import Decimal

__all__ = ["parse_quantity"]

_SUFFIXES: dict[str, Decimal] = {
    "": Decimal(1),
    "n": Decimal("1e-9"), "u": Decimal("1e-6"), "m": Decimal("1e-3"),
    "k": Decimal("1e3"), "M": Decimal("1e6"), "G": Decimal("1e9"), "T": Decimal("1e12"),
    "P": Decimal("1e15"), "E": Decimal("1e18"),
    "Ki": Decimal(2**10), "Mi": Decimal(2**20), "Gi": Decimal(2**30), "Ti": Decimal(2**40),
    "Pi": Decimal(2**50), "Ei": Decimal(2**60),
}
_QUANTITY_RE = re.compile(r"([+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+))(Ki|Mi|Gi|Ti|Pi|Ei|[numkMGTPE]|[eE][+-]?[0-9]+)?")


def parse_quantity(text: str | int | float) -> Decimal:
    """The value of a quantity in base units ("100m" -> 0.1, "1Ki" -> 1024); ValueError when malformed."""
    if isinstance(text, bool):
        raise ValueError(f"quantity must be a string or a number, not {text!r}")
    if isinstance(text, int | float):
        return Decimal(str(text))
    match = _QUANTITY_RE.fullmatch(text.strip()) if isinstance(text, str) else None
    if not match:
        raise ValueError("quantities must match the regular expression "
                         "'^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$'")
    number, suffix = match.group(1), match.group(2) or ""
    value = Decimal(number)
    if suffix[:1] in ("e", "E"):
        return value.scaleb(int(suffix[1:]))
    return value * _SUFFIXES[suffix]
