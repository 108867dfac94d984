"""Kubernetes resource quantities: parse "100m", "0.5", "64Mi", "129e6"; format them back.

The one parser of pinnace: the master reads manifests with it, the agent its
capacity and reserve flags. Nothing past parsing sees a quantity string: CPU
becomes whole millicores and memory whole bytes (rounded up, as Kubernetes'
MilliValue/Value do: "0.0005" CPU is 1m), and the formatters turn them back into
the canonical short forms kubectl prints. The grammar is Kubernetes' (a number,
then one suffix or one exponent). Arithmetic is exact (`Fraction`), and
exponents and digit counts are bounded first, so "1e999999999" is refused
instead of computed.
"""

from __future__ import annotations

import json
import math
import re
from fractions import Fraction

_QUANTITY = re.compile(
    r"^(?P<sign>[+-]?)(?P<number>[0-9]+(?:\.[0-9]*)?|\.[0-9]+)"
    r"(?:(?P<suffix>Ki|Mi|Gi|Ti|Pi|Ei|n|u|m|k|M|G|T|P|E)|[eE](?P<exp>[+-]?[0-9]+))?$"
)
_BINARY = {"Ki": 1, "Mi": 2, "Gi": 3, "Ti": 4, "Pi": 5, "Ei": 6}
_DECIMAL = {"n": -9, "u": -6, "m": -3, "": 0, "k": 3, "M": 6, "G": 9, "T": 12, "P": 15, "E": 18}
_MAX_DIGITS = 40
_MAX_EXPONENT = 30
# Kubernetes keeps quantities in int64; nothing larger is meaningful.
_MAX_VALUE = 2**63 - 1
_SHOWN = 60


class QuantityError(ValueError):
    """Not a valid quantity; the message is a reason fit for an error naming the field."""


def _show(value: object) -> str:
    """A user's value in a message: strings quoted and cut short, numbers as written."""
    if isinstance(value, str):
        return json.dumps(value if len(value) <= _SHOWN else value[:_SHOWN] + "...")
    if isinstance(value, int | float) and not isinstance(value, bool):
        return repr(value)
    return f"a {type(value).__name__}"


def _to_text(value: object) -> str:
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise QuantityError(f'must be a quantity such as "500m", "1" or "64Mi", got {_show(value)}')
    if isinstance(value, float):
        if not math.isfinite(value):
            raise QuantityError("must be a finite quantity")
        return repr(value)
    return str(value)


def parse_quantity(value: object) -> Fraction:
    """Parse a Kubernetes quantity (string or YAML number) to an exact, non-negative number."""
    text = _to_text(value).strip()
    match = _QUANTITY.match(text)
    if match is None:
        raise QuantityError(f'must be a quantity such as "500m", "1" or "64Mi", got {_show(text)}')
    if len(match["number"]) > _MAX_DIGITS:
        raise QuantityError(f"has too many digits (at most {_MAX_DIGITS})")
    number = Fraction(match["number"])
    if match["sign"] == "-" and number != 0:
        raise QuantityError(f"must not be negative, got {_show(text)}")
    suffix = match["suffix"] or ""
    if match["exp"] is not None:
        exponent = int(match["exp"])
        if abs(exponent) > _MAX_EXPONENT:
            raise QuantityError(f"exponent out of range, got {_show(text)}")
        result = number * Fraction(10) ** exponent
    elif suffix in _BINARY:
        result = number * 1024 ** _BINARY[suffix]
    else:
        result = number * Fraction(10) ** _DECIMAL[suffix]
    if result > _MAX_VALUE:
        raise QuantityError(f"is too large, got {_show(text)}")
    return result


def parse_quantity_cpu(value: object) -> int:
    """CPU quantity -> millicores, rounded up ("100m" -> 100, "0.5" -> 500, 2 -> 2000)."""
    return math.ceil(parse_quantity(value) * 1000)


def parse_quantity_memory(value: object) -> int:
    """Memory quantity -> bytes, rounded up ("64Mi" -> 67108864, "129e6" -> 129000000)."""
    return math.ceil(parse_quantity(value))


def format_cpu(millis: int) -> str:
    """Millicores as kubectl shows them: "2" for whole cores, else "1500m"."""
    if millis % 1000 == 0:
        return str(millis // 1000)
    return f"{millis}m"


def format_memory(num_bytes: int) -> str:
    """Bytes in the largest exact unit: "64Mi", "1G", or plain "128974849"."""
    if num_bytes == 0:
        return "0"
    for suffix, power in sorted(_BINARY.items(), key=lambda item: -item[1]):
        if num_bytes % 1024**power == 0:
            return f"{num_bytes // 1024**power}{suffix}"
    for suffix in ("E", "P", "T", "G", "M", "k"):
        unit = 10 ** _DECIMAL[suffix]
        if num_bytes % unit == 0:
            return f"{num_bytes // unit}{suffix}"
    return str(num_bytes)


def format_memory_ki(num_bytes: int) -> str:
    """Node memory the way kubelets report it: "16318412Ki" (plain bytes if not whole Ki)."""
    if num_bytes % 1024 == 0:
        return f"{num_bytes // 1024}Ki"
    return str(num_bytes)
