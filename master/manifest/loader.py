"""Safe YAML loading with limits: bytes in, plain documents (dicts, lists, scalars) out.

Manifests come from users and travel to the master over the network, so the
loader assumes the worst. It decodes strict UTF-8, then makes one pass over the
YAML *event* stream (no objects built yet) to enforce the limits listed in
`master.manifest` -- documents, nesting depth, aliases, and the size a document
would have once its aliases were expanded (the "billion laughs" attack builds a
tiny file that expands to gigabytes). Only a file that passes is constructed,
with PyYAML's safe loader (libyaml's when available), never the full loader.
Every failure becomes one `ManifestError` sentence with the line number.

`check_document` holds a document that arrived already parsed (a Kubernetes API request's
JSON body) to the same limits, without the round trip through YAML text: for a JSON body
there are no aliases and no duplicate keys, so what is left to count is its depth and its
values (~1 ms less CPU per API write, and JSON's `1e+20` stays a number; YAML 1.1 read it
back as a string).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import yaml

from master.manifest.errors import ManifestError, describe

MAX_FILE_BYTES = 1024 * 1024
MAX_DOCUMENTS = 200
MAX_DEPTH = 40
MAX_ALIASES = 200
MAX_EXPANDED_NODES = 100_000

_Loader: type[yaml.SafeLoader] | type[yaml.CSafeLoader]
try:
    _Loader = yaml.CSafeLoader
except AttributeError:  # pragma: no cover - libyaml missing
    _Loader = yaml.SafeLoader


class TooManyDocuments(ManifestError):
    """The apply holds more documents than MAX_DOCUMENTS; later files are not read."""


@dataclass(slots=True)
class _Frame:
    """An open sequence or mapping during the event scan."""

    is_map: bool
    anchor: str | None
    nodes: int = 1
    height: int = 1
    children: int = 0
    keys: set[str] = field(default_factory=set)


@dataclass(slots=True)
class _Scan:
    """State of the event scan of one file."""

    name: str
    documents_before: int
    document: int = 0
    aliases: int = 0
    doc_nodes: int = 0
    stack: list[_Frame] = field(default_factory=list)
    # anchor -> (expanded node count, height); None while the anchor is still open.
    anchors: dict[str, tuple[int, int] | None] = field(default_factory=dict)

    def fail(self, line: int, reason: str) -> ManifestError:
        doc = max(self.document, 1)
        return ManifestError(f"{self.name}: document {doc}: line {line + 1}: {reason}")

    def start_document(self, line: int) -> None:
        self.document += 1
        if self.documents_before + self.document > MAX_DOCUMENTS:
            error = self.fail(line, f"too many documents (at most {MAX_DOCUMENTS} in one apply)")
            raise TooManyDocuments(str(error))
        self.doc_nodes = 0
        self.anchors = {}

    def count(self, nodes: int, line: int) -> None:
        self.doc_nodes += nodes
        if self.doc_nodes > MAX_EXPANDED_NODES:
            raise self.fail(
                line,
                f"document too large once its aliases are expanded "
                f"(more than {MAX_EXPANDED_NODES} values)",
            )

    def attach(self, nodes: int, height: int, line: int, key: str | None) -> None:
        """Account a finished value (scalar, alias or collection) to its parent."""
        if not self.stack:
            return
        top = self.stack[-1]
        if top.is_map and top.children % 2 == 0 and key is not None:
            if key in top.keys:
                raise self.fail(line, f"duplicate key {describe(key)} in the same map")
            top.keys.add(key)
        top.children += 1
        top.nodes += nodes
        top.height = max(top.height, height + 1)

    def scalar(self, value: str, anchor: str | None, line: int) -> None:
        self.count(1, line)
        if anchor is not None:
            self.anchors[anchor] = (1, 0)
        self.attach(1, 0, line, value)

    def open(self, is_map: bool, anchor: str | None, line: int) -> None:
        self.count(1, line)
        if len(self.stack) + 1 > MAX_DEPTH:
            raise self.fail(line, f"nested deeper than {MAX_DEPTH} levels")
        if anchor is not None:
            self.anchors[anchor] = None
        self.stack.append(_Frame(is_map, anchor))

    def close(self, line: int) -> None:
        frame = self.stack.pop()
        if frame.anchor is not None:
            self.anchors[frame.anchor] = (frame.nodes, frame.height)
        self.attach(frame.nodes, frame.height, line, None)

    def alias(self, anchor: str, line: int) -> None:
        self.aliases += 1
        if self.aliases > MAX_ALIASES:
            raise self.fail(line, f"too many aliases (at most {MAX_ALIASES} in one file)")
        if anchor not in self.anchors:
            raise self.fail(line, f"alias *{anchor} refers to no anchor")
        size = self.anchors[anchor]
        if size is None:
            raise self.fail(line, f"alias *{anchor} refers to itself")
        nodes, height = size
        self.count(nodes, line)
        if len(self.stack) + height > MAX_DEPTH:
            raise self.fail(line, f"nested deeper than {MAX_DEPTH} levels")
        self.attach(nodes, height, line, None)


def _decode(name: str, data: bytes) -> str:
    if len(data) > MAX_FILE_BYTES:
        raise ManifestError(
            f"{name}: file is too large ({len(data)} bytes; at most {MAX_FILE_BYTES} bytes)"
        )
    data = data.removeprefix(b"\xef\xbb\xbf")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise ManifestError(
            f"{name}: line {line}: not valid UTF-8 text (byte 0x{data[exc.start]:02x})"
        ) from None


def _yaml_reason(exc: yaml.YAMLError, text: str) -> tuple[int, str]:
    """The 0-based line and a one-line reason for a PyYAML error."""
    if isinstance(exc, yaml.reader.ReaderError):
        line = text[: exc.position].count("\n")
        char = exc.character
        code = char if isinstance(char, int) else ord(char) if len(char) == 1 else None
        shown = "" if code is None else f" (character #x{code:04x})"
        return line, f"invalid YAML: {exc.reason}{shown}"
    if isinstance(exc, yaml.MarkedYAMLError):
        mark = exc.problem_mark or exc.context_mark
        line = mark.line if mark is not None else 0
        reason = exc.problem or exc.context or "syntax error"
        if exc.context and exc.problem and exc.context_mark is not None:
            reason = f"{reason} ({exc.context} at line {exc.context_mark.line + 1})"
        return line, "invalid YAML: " + " ".join(reason.split())
    return 0, "invalid YAML: " + " ".join(str(exc).split())


def _scan(name: str, text: str, documents_before: int) -> int:
    """Check the limits over the event stream; return the number of documents."""
    scan = _Scan(name, documents_before)
    loader = _Loader(text)
    try:
        while loader.check_event():
            event = loader.get_event()
            mark = getattr(event, "start_mark", None)
            line = mark.line if mark is not None else 0
            if isinstance(event, yaml.DocumentStartEvent):
                scan.start_document(line)
            elif isinstance(event, yaml.ScalarEvent):
                scan.scalar(event.value, event.anchor, line)
            elif isinstance(event, yaml.AliasEvent):
                scan.alias(event.anchor or "", line)
            elif isinstance(event, yaml.SequenceStartEvent | yaml.MappingStartEvent):
                scan.open(isinstance(event, yaml.MappingStartEvent), event.anchor, line)
            elif isinstance(event, yaml.SequenceEndEvent | yaml.MappingEndEvent):
                scan.close(line)
    except yaml.YAMLError as exc:
        line, reason = _yaml_reason(exc, text)
        raise scan.fail(line, reason) from None
    finally:
        loader.dispose()
    return scan.document


def load_documents(
    name: str, data: bytes, documents_before: int = 0
) -> tuple[int, list[tuple[int, Any]]]:
    """Parse one file: its number of documents and the non-empty ones as (1-based number, value).

    `documents_before` is how many documents earlier files of the same apply
    held, so the document limit holds for the whole apply.
    """
    text = _decode(name, data)
    count = _scan(name, text, documents_before)
    documents: list[tuple[int, Any]] = []
    number = 0
    try:
        for value in yaml.load_all(text, Loader=_Loader):
            number += 1
            if value is not None:
                documents.append((number, value))
    except yaml.YAMLError as exc:
        line, reason = _yaml_reason(exc, text)
        raise ManifestError(f"{name}: document {number + 1}: line {line + 1}: {reason}") from None
    except Exception as exc:
        # e.g. an integer of more than 4300 digits, or a timestamp like 2024-13-45
        reason = " ".join(str(exc).split()) or type(exc).__name__
        if "digits" in reason:
            reason = "a number has too many digits"
        raise ManifestError(
            f"{name}: document {number + 1}: invalid YAML value: {reason}"
        ) from None
    if number != count:  # pragma: no cover - both passes read the same text
        raise ManifestError(f"{name}: could not read the documents consistently")
    return count, documents


def check_document(
    name: str, value: Any, documents_before: int = 0
) -> tuple[int, list[tuple[int, Any]]]:
    """One already-parsed document held to the loader's limits: `load_documents`' answer
    for a file holding only it (its number of documents, and [(1, value)] unless empty)."""
    scan = _Scan(name, documents_before)
    scan.start_document(0)
    # (value, depth of the collections around it), walked without recursion.
    pending: list[tuple[Any, int]] = [(value, 0)]
    while pending:
        item, depth = pending.pop()
        scan.doc_nodes += 1
        if scan.doc_nodes > MAX_EXPANDED_NODES:
            raise _unplaced(scan, f"document too large (more than {MAX_EXPANDED_NODES} values)")
        if isinstance(item, dict | list):
            if depth + 1 > MAX_DEPTH:
                raise _unplaced(scan, f"nested deeper than {MAX_DEPTH} levels")
            children = item.values() if isinstance(item, dict) else item
            # Keys are values too, as in the YAML scan.
            scan.doc_nodes += len(item) if isinstance(item, dict) else 0
            pending.extend((child, depth + 1) for child in children)
    return 1, [] if value is None else [(1, value)]


def _unplaced(scan: _Scan, reason: str) -> ManifestError:
    """A limit broken by a parsed document: no line to name."""
    return ManifestError(f"{scan.name}: document {scan.document}: {reason}")


def fewer_values_than(value: Any, limit: int) -> bool:
    """Whether `value` holds fewer than `limit` values (keys, scalars and collections, as
    the limits count them): looks at no more than `limit` of them."""
    seen = 0
    pending = [value]
    while pending:
        item = pending.pop()
        seen += 1 + (len(item) if isinstance(item, dict) else 0)
        if seen >= limit:
            return False
        if isinstance(item, dict):
            pending.extend(item.values())
        elif isinstance(item, list):
            pending.extend(item)
    return True
