"""Quantities in manifests: the kernel's parser (kernel/quantity.py), with the manifest's
own description of a value that is not a quantity at all (a map, a list, a date that
YAML read from an unquoted 2024-01-01), so the error says how to fix it.
"""

from __future__ import annotations

from kernel.quantity import (
    QuantityError,
    format_cpu,
    format_memory,
    format_memory_ki,
    parse_quantity,
)
from kernel.quantity import parse_quantity_cpu as _cpu
from kernel.quantity import parse_quantity_memory as _memory
from master.manifest.errors import describe

__all__ = [
    "QuantityError",
    "format_cpu",
    "format_memory",
    "format_memory_ki",
    "parse_quantity",
    "parse_quantity_cpu",
    "parse_quantity_memory",
]


def _scalar(value: object) -> object:
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise QuantityError(
            f'must be a quantity such as "500m", "1" or "64Mi", got {describe(value)}'
        )
    return value


def parse_quantity_cpu(value: object) -> int:
    """CPU quantity -> millicores, rounded up ("100m" -> 100, "0.5" -> 500, 2 -> 2000)."""
    return _cpu(_scalar(value))


def parse_quantity_memory(value: object) -> int:
    """Memory quantity -> bytes, rounded up ("64Mi" -> 67108864, "129e6" -> 129000000)."""
    return _memory(_scalar(value))
