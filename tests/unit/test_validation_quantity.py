"""Resource quantities parse exactly, as Kubernetes reads them."""

from __future__ import annotations

from decimal import Decimal

import pytest

from provisioner.controlplane.quantity import parse_quantity


@pytest.mark.parametrize(("text", "value"), [
    pytest.param("1", Decimal(1), id="plain"),
    pytest.param("100m", Decimal("0.1"), id="milli"),
    pytest.param("2.5", Decimal("2.5"), id="fraction"),
    pytest.param("128Mi", Decimal(128 * 2**20), id="mebi"),
    pytest.param("1.5Gi", Decimal(3 * 2**29), id="fractional-gibi"),
    pytest.param("1k", Decimal(1000), id="kilo"),
    pytest.param("2e3", Decimal(2000), id="exponent"),
    pytest.param("500n", Decimal("0.0000005"), id="nano"),
    pytest.param(".5", Decimal("0.5"), id="leading-dot"),
    pytest.param(2, Decimal(2), id="yaml-integer"),
    pytest.param(0.25, Decimal("0.25"), id="yaml-float"),
])
def test_quantity_values(text: str | int | float, value: Decimal) -> None:
    assert parse_quantity(text) == value


@pytest.mark.parametrize("text", [
    pytest.param("", id="empty"),
    pytest.param("lots", id="word"),
    pytest.param("1Q", id="unknown-suffix"),
    pytest.param("1 Gi", id="inner-space"),
    pytest.param("Gi", id="suffix-only"),
    pytest.param(True, id="boolean"),
])
def test_malformed_quantities_raise(text: str | bool) -> None:
    with pytest.raises(ValueError, match="quantit"):
        parse_quantity(text)
