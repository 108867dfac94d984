"""Typed access to one level of a YAML document, with Kubernetes' field rules.

Validators walk a document with these helpers instead of indexing dicts, so a
wrong type anywhere (a list where a map belongs, a number where a string does)
becomes a clean `ManifestError` at that field's path. `check_fields` sorts the
keys of a map into the three kinds Kubernetes users meet: fields pinnace
implements, fields Kubernetes knows that pinnace does not implement yet (a
warning: reported, ignored), read-only fields the server fills (silently
ignored, so `get -o yaml | apply -f -` works), and anything else -- a typo --
which is an error with a did-you-mean.
"""

from __future__ import annotations

import difflib
from collections.abc import Collection
from typing import Any

from master.manifest.errors import Where, describe


def is_empty(value: Any) -> bool:
    """Null, {} and [] carry no setting; Kubernetes treats them as absent."""
    return value is None or value == {} or value == []


def as_map(value: Any, where: Where) -> dict[str, Any]:
    """A mapping with string keys; null is an empty map."""
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise where.error(f"must be a map, got {describe(value)}")
    for key in value:
        if not isinstance(key, str):
            raise where.error(f"keys must be strings, got {describe(key)}")
    return value


def as_list(value: Any, where: Where) -> list[Any]:
    """A sequence; null is an empty list."""
    if value is None:
        return []
    if not isinstance(value, list):
        raise where.error(f"must be a list, got {describe(value)}")
    return value


def as_str(value: Any, where: Where) -> str:
    if not isinstance(value, str):
        raise where.error(f"must be a string, got {describe(value)}")
    if "\x00" in value:
        raise where.error("must not contain NUL characters")
    return value


def as_int(value: Any, where: Where, low: int, high: int | None = None) -> int:
    """An integer in [low, high]; booleans and floats are not integers (as in Kubernetes)."""
    in_range = (
        isinstance(value, int)
        and not isinstance(value, bool)
        and value >= low
        and (high is None or value <= high)
    )
    if not in_range:
        bound = f"an integer >= {low}" if high is None else f"an integer from {low} to {high}"
        raise where.error(f"must be {bound}, got {describe(value)}")
    result: int = value
    return result


def as_str_map(value: Any, where: Where) -> dict[str, str]:
    """A map of strings to strings (labels, annotations, selectors)."""
    result: dict[str, str] = {}
    for key, item in as_map(value, where).items():
        result[key] = as_str(item, where.key(key))
    return result


def as_str_list(value: Any, where: Where) -> tuple[str, ...]:
    return tuple(as_str(item, where.index(i)) for i, item in enumerate(as_list(value, where)))


def one_of(value: Any, where: Where, allowed: Collection[str]) -> str:
    text = as_str(value, where)
    if text not in allowed:
        choices = ", ".join(f'"{a}"' for a in allowed)
        raise where.error(f"must be one of {choices}, got {describe(value)}")
    return text


def check_fields(
    data: dict[str, Any],
    where: Where,
    supported: Collection[str],
    unsupported: Collection[str] = (),
    ignored: Collection[str] = (),
) -> None:
    """Warn about known-but-unimplemented fields; refuse unknown ones with a suggestion."""
    known = [*supported, *unsupported, *ignored]
    for key in data:
        if key in supported or key in ignored:
            continue
        if key in unsupported:
            if not is_empty(data[key]):
                where.key(key).warn("not supported yet, ignored")
            continue
        close = difflib.get_close_matches(key, known, n=1, cutoff=0.6)
        hint = f' (did you mean "{close[0]}"?)' if close else ""
        raise where.key(key).error(f"unknown field{hint}")


def require(data: dict[str, Any], key: str, where: Where) -> Any:
    """The value at `key`, which must be present and not null."""
    value = data.get(key)
    if value is None:
        raise where.key(key).error("is required")
    return value
