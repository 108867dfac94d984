"""Label and field selectors as the Kubernetes API takes them (labelSelector, fieldSelector).

Label selectors: `a=b`, `a==b`, `a!=b`, `a in (x,y)`, `a notin (x)`, `a`, `!a`,
comma-separated, all must hold. Field selectors: `path=value`, `path==value`,
`path!=value` over a rendered object's fields (`metadata.name`,
`spec.nodeName`, `status.phase`, `involvedObject.name` ...), which is what
kubectl sends for `rollout status`, `describe` and `get --field-selector`.
Parsing is pure; a malformed selector is a ValueError with one sentence.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

Obj = dict[str, Any]
Predicate = Callable[[dict[str, str]], bool]

_SET = re.compile(r"^\s*(!?)([A-Za-z0-9._/-]+)\s*(?:(in|notin)\s*\(([^)]*)\))?\s*$")
_EQ = re.compile(r"^\s*([A-Za-z0-9._/-]+)\s*(==|=|!=)\s*([A-Za-z0-9._-]*)\s*$")


def _split_top(text: str) -> list[str]:
    """Split on commas outside parentheses."""
    parts, depth, start = [], 0, 0
    for i, ch in enumerate(text):
        if ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
        elif ch == "," and depth == 0:
            parts.append(text[start:i])
            start = i + 1
    parts.append(text[start:])
    return [p for p in parts if p.strip()]


def _requirement(part: str) -> Predicate:
    m = _EQ.match(part)
    if m:
        key, op, value = m.groups()
        if op == "!=":
            return lambda labels: labels.get(key) != value
        return lambda labels: labels.get(key) == value
    m = _SET.match(part)
    if m:
        neg, key, op, values = m.groups()
        if op is None:
            if neg:
                return lambda labels: key not in labels
            return lambda labels: key in labels
        if neg:
            raise ValueError(f"invalid label selector {part.strip()!r}")
        allowed = {v.strip() for v in values.split(",") if v.strip()}
        if op == "in":
            return lambda labels: labels.get(key) in allowed
        return lambda labels: labels.get(key) not in allowed
    raise ValueError(f"unable to parse requirement: {part.strip()[:100]!r}")


def parse_label_selector(text: str) -> Predicate:
    """A predicate over labels; the empty selector matches everything."""
    requirements = [_requirement(p) for p in _split_top(text or "")]
    return lambda labels: all(r(labels) for r in requirements)


def field_value(obj: Obj, path: str) -> str:
    """The string value at a dotted path of a rendered object ("" when absent)."""
    value: Any = obj
    for part in path.split("."):
        if not isinstance(value, dict):
            return ""
        value = value.get(part)
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def parse_field_selector(text: str) -> Callable[[Obj], bool]:
    """A predicate over rendered objects; only equality and inequality, as in Kubernetes."""
    checks: list[tuple[str, bool, str]] = []
    for part in _split_top(text or ""):
        m = re.match(r"^\s*([A-Za-z0-9._]+)\s*(==|=|!=)\s*(.*?)\s*$", part)
        if not m:
            raise ValueError(f"invalid field selector {part.strip()[:100]!r}")
        path, op, value = m.groups()
        checks.append((path, op != "!=", value))
    return lambda obj: all((field_value(obj, p) == v) == eq for p, eq, v in checks)


def selected_name(text: str) -> str | None:
    """The name a field selector pins (`metadata.name=web`), if it pins one."""
    for part in _split_top(text or ""):
        m = re.match(r"^\s*metadata\.name\s*(==|=)\s*(.*?)\s*$", part)
        if m:
            return m.group(2)
    return None
