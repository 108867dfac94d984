"""Errors and warnings about manifests, and where in a manifest they point.

Every message pinnace prints about a manifest has one shape so users can find
the problem without a traceback: ``<file>: document <n>: <field path>: <reason>``.
A `Where` carries the file, the 1-based document number and the field path down
through the validators; it turns a reason into a `ManifestError` (fatal, nothing
is stored) or appends a warning (a field we know but do not implement yet) to the
list shared by every `Where` of one parse.
"""

from __future__ import annotations

import datetime
import json
import re
from dataclasses import dataclass, field
from typing import Any

_SIMPLE_KEY = re.compile(r"^[A-Za-z_][A-Za-z0-9_-]*\Z")
_MAX_SHOWN = 60


class ManifestError(Exception):
    """A manifest is invalid; `str(e)` is one sentence naming file, document and field."""


def describe(value: Any) -> str:
    """Show a user's value in an error: strings quoted and cut short, collections by kind."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        text = repr(value)
        return text if len(text) <= _MAX_SHOWN else text[:_MAX_SHOWN] + "..."
    if isinstance(value, str):
        text = json.dumps(value if len(value) <= _MAX_SHOWN else value[:_MAX_SHOWN] + "...")
        return text
    if isinstance(value, dict):
        return "a map"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, datetime.date):
        # YAML 1.1 reads 2024-01-01 as a date; the usual fix is quoting it.
        return f"a timestamp ({value.isoformat()}; quote it to make it a string)"
    if isinstance(value, bytes):
        return "binary data"
    return f"a {type(value).__name__}"


def key_segment(key: str) -> str:
    """How a map key appears in a field path: `.name` or `["app.kubernetes.io/name"]`."""
    if _SIMPLE_KEY.match(key):
        return "." + key
    return "[" + json.dumps(key) + "]"


Warned = tuple[str, int, str, str]


@dataclass(frozen=True, slots=True)
class Where:
    """A position in one document: file, document number (1-based) and field path."""

    file: str
    document: int
    path: str = ""
    # Shared by every Where of one parse, so warnings gather in document order:
    # (file, document, field path, reason); documents.py turns them into lines.
    warnings: list[Warned] = field(default_factory=list, compare=False, repr=False)

    def key(self, name: str) -> Where:
        segment = key_segment(name)
        path = self.path + segment if self.path else segment.lstrip(".")
        return Where(self.file, self.document, path, self.warnings)

    def index(self, i: int) -> Where:
        return Where(self.file, self.document, f"{self.path}[{i}]", self.warnings)

    def prefix(self) -> str:
        parts = [self.file, f"document {self.document}"]
        if self.path:
            parts.append(self.path)
        return ": ".join(parts)

    def error(self, reason: str) -> ManifestError:
        return ManifestError(f"{self.prefix()}: {reason}")

    def warn(self, reason: str) -> None:
        self.warnings.append((self.file, self.document, self.path, reason))
