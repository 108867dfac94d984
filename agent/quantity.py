"""Kubernetes quantity strings ("100m", "0.5", "256Mi", "1G") parsed to millicores and bytes.

Used for the agent's command-line flags (capacity overrides and reserves); the
master parses manifests itself, so this only needs the forms a person types.
"""

from __future__ import annotations

import re
from decimal import Decimal, InvalidOperation

_BINARY = {"Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40, "Pi": 2**50, "Ei": 2**60}
_DECIMAL = {"n": Decimal("1e-9"), "u": Decimal("1e-6"), "m": Decimal("1e-3"), "": Decimal(1)}
_DECIMAL |= {"k": Decimal(10**3), "M": Decimal(10**6), "G": Decimal(10**9)}
_DECIMAL |= {"T": Decimal(10**12), "P": Decimal(10**15), "E": Decimal(10**18)}
_FORM = re.compile(r"^([+]?[0-9]*\.?[0-9]+(?:[eE][+-]?[0-9]+)?)([A-Za-z]*)\Z")


class QuantityError(ValueError):
    """A quantity string that is not a Kubernetes quantity."""


def _parse(text: str) -> Decimal:
    match = _FORM.match(text.strip())
    if not match:
        raise QuantityError(f"{text!r} is not a quantity (examples: 500m, 2, 256Mi, 1G)")
    number, suffix = match.groups()
    try:
        value = Decimal(number)
    except InvalidOperation as exc:  # pragma: no cover - the regex admits only numbers
        raise QuantityError(f"{text!r} is not a quantity") from exc
    if suffix in _BINARY:
        return value * _BINARY[suffix]
    if suffix in _DECIMAL:
        return value * _DECIMAL[suffix]
    raise QuantityError(f"{text!r} has an unknown suffix {suffix!r}")


def parse_cpu_millis(text: str) -> int:
    """ "100m" -> 100, "2" -> 2000, "0.5" -> 500."""
    return int((_parse(text) * 1000).to_integral_value())


def parse_memory_bytes(text: str) -> int:
    """ "256Mi" -> 268435456, "1G" -> 1000000000, "1024" -> 1024."""
    return int(_parse(text).to_integral_value())
