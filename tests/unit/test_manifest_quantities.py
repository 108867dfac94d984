"""Kubernetes quantities: parsing to millicores and bytes, and formatting back."""

from __future__ import annotations

import pytest

from master.manifest import (
    format_cpu,
    format_memory,
    format_memory_ki,
    parse_quantity_cpu,
    parse_quantity_memory,
)
from master.manifest.quantities import QuantityError


@pytest.mark.parametrize(
    ("text", "millis"),
    [
        ("100m", 100),
        ("0.5", 500),
        ("1", 1000),
        (1, 1000),
        (0.25, 250),
        ("2.5", 2500),
        ("250u", 1),  # rounded up to a whole millicore, like Kubernetes
        ("1k", 1_000_000),
        ("1e-3", 1),
        ("0", 0),
    ],
)
def test_cpu_quantities(text: object, millis: int) -> None:
    assert parse_quantity_cpu(text) == millis


@pytest.mark.parametrize(
    ("text", "num_bytes"),
    [
        ("64Mi", 64 * 1024**2),
        ("1G", 10**9),
        ("128974848", 128_974_848),
        (128974848, 128_974_848),
        ("129e6", 129_000_000),
        ("129E6", 129_000_000),
        ("123Mi", 123 * 1024**2),
        ("1.5Gi", 3 * 1024**3 // 2),
        ("1Ki", 1024),
        ("1k", 1000),
    ],
)
def test_memory_quantities(text: object, num_bytes: int) -> None:
    assert parse_quantity_memory(text) == num_bytes


@pytest.mark.parametrize(
    "text",
    ["", "lots", "1K", "1mi", "-1", "1e999999999", "1" * 41, "1e", "Mi", None, True, [1], "1 Gi"],
)
def test_invalid_quantities_are_refused(text: object) -> None:
    with pytest.raises(QuantityError):
        parse_quantity_memory(text)


def test_huge_quantity_is_refused() -> None:
    with pytest.raises(QuantityError, match="too large"):
        parse_quantity_memory("100Ei")


def test_formatting_round_trips() -> None:
    for millis in (1, 100, 999, 1000, 1500, 4000):
        assert parse_quantity_cpu(format_cpu(millis)) == millis
    for num_bytes in (1, 1000, 1024, 64 * 1024**2, 10**9, 128_974_849, 3 * 1024**3):
        assert parse_quantity_memory(format_memory(num_bytes)) == num_bytes
    assert format_cpu(2000) == "2"
    assert format_cpu(1500) == "1500m"
    assert format_memory(64 * 1024**2) == "64Mi"
    assert format_memory(10**9) == "1G"
    assert format_memory_ki(8 * 1024**3) == "8388608Ki"
