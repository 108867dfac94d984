"""Quantity parsing, capacity overrides and reserves."""

from __future__ import annotations

import pytest

from agent.capacity import compute_resources, detect_capacity
from agent.model import Resources
from kernel.quantity import QuantityError, parse_quantity_cpu, parse_quantity_memory


@pytest.mark.parametrize(
    ("text", "millis"), [("100m", 100), ("2", 2000), ("0.5", 500), ("1.25", 1250), ("1e3", 1000000)]
)
def test_cpu_quantities(text: str, millis: int) -> None:
    assert parse_quantity_cpu(text) == millis


@pytest.mark.parametrize(
    ("text", "size"),
    [("256Mi", 256 * 2**20), ("1Gi", 2**30), ("1G", 10**9), ("128974848", 128974848), ("1k", 1000)],
)
def test_memory_quantities(text: str, size: int) -> None:
    assert parse_quantity_memory(text) == size


@pytest.mark.parametrize("text", ["", "lots", "1Xi", "-1", "1.2.3"])
def test_bad_quantities_are_rejected(text: str) -> None:
    with pytest.raises(QuantityError):
        parse_quantity_memory(text)


def test_detected_capacity_is_positive() -> None:
    detected = detect_capacity()

    assert detected.cpu_millis >= 1000 and detected.cpu_millis % 1000 == 0
    assert detected.memory_bytes > 0


def test_allocatable_is_capacity_minus_reserve_and_overrides_win() -> None:
    result = compute_resources(Resources(2000, 8 * 2**30), capacity_cpu="4", capacity_memory="2Gi")

    assert result.capacity == Resources(4000, 2 * 2**30)
    assert result.allocatable == Resources(3900, 2 * 2**30 - 256 * 2**20)


def test_allocatable_never_goes_negative() -> None:
    result = compute_resources(Resources(100, 100), reserve_cpu="1", reserve_memory="1Gi")

    assert result.allocatable == Resources(0, 0)
