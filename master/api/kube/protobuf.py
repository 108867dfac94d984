"""The one protobuf body pinnace reads: a Namespace, as `kubectl create namespace` sends it.

kubectl's typed requests send Kubernetes' protobuf encoding (`application/vnd.kubernetes.
protobuf`) and do not fall back to JSON. Everything else arrives as JSON or YAML, so rather
than a protobuf stack this reads the envelope (`k8s\\0` + runtime.Unknown{typeMeta, raw})
and, for a v1 Namespace, the metadata fields a user can set (name, labels,
annotations); the rest is refused with 415 naming what is accepted.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

MAGIC = b"k8s\x00"


class ProtobufError(ValueError):
    """Not a body this reader understands."""


def _varint(data: bytes, i: int) -> tuple[int, int]:
    value, shift = 0, 0
    while True:
        if i >= len(data) or shift > 63:
            raise ProtobufError("a varint runs past the end")
        byte = data[i]
        i += 1
        value |= (byte & 0x7F) << shift
        if byte < 0x80:
            return value, i
        shift += 7


def fields(data: bytes) -> Iterator[tuple[int, int | bytes]]:
    """(field number, value) of one message: ints for varints, bytes for length-delimited."""
    i = 0
    while i < len(data):
        key, i = _varint(data, i)
        number, wire = key >> 3, key & 7
        if wire == 0:
            value, i = _varint(data, i)
            yield number, value
        elif wire == 2:
            size, i = _varint(data, i)
            if i + size > len(data):
                raise ProtobufError("a field runs past the end")
            yield number, data[i : i + size]
            i += size
        elif wire in (1, 5):
            i += 8 if wire == 1 else 4
        else:
            raise ProtobufError(f"wire type {wire} is not supported")


def _text(value: int | bytes) -> str:
    if not isinstance(value, bytes):
        raise ProtobufError("expected a string")
    return value.decode()


def _entry(value: int | bytes) -> tuple[str, str]:
    if not isinstance(value, bytes):
        raise ProtobufError("expected a map entry")
    found = dict(fields(value))
    return _text(found.get(1, b"")), _text(found.get(2, b""))


def _metadata(raw: bytes) -> dict[str, Any]:
    meta: dict[str, Any] = {}
    labels: dict[str, str] = {}
    annotations: dict[str, str] = {}
    for number, value in fields(raw):
        if number == 1:
            meta["name"] = _text(value)
        elif number == 11:
            key, text = _entry(value)
            labels[key] = text
        elif number == 12:
            key, text = _entry(value)
            annotations[key] = text
    if labels:
        meta["labels"] = labels
    if annotations:
        meta["annotations"] = annotations
    return meta


def decode_namespace(body: bytes) -> dict[str, Any]:
    """The JSON-shaped Namespace a protobuf body holds; ProtobufError for anything else."""
    if not body.startswith(MAGIC):
        raise ProtobufError("the body lacks Kubernetes' protobuf envelope")
    type_meta: dict[int, int | bytes] = {}
    raw = b""
    for number, value in fields(body[len(MAGIC) :]):
        if number == 1 and isinstance(value, bytes):
            type_meta = dict(fields(value))
        elif number == 2 and isinstance(value, bytes):
            raw = value
    api_version = _text(type_meta.get(1, b""))
    kind = _text(type_meta.get(2, b""))
    if (api_version, kind) != ("v1", "Namespace"):
        raise ProtobufError(f"a protobuf {kind or 'object'} body")
    meta: dict[str, Any] = {}
    for number, value in fields(raw):
        if number == 1 and isinstance(value, bytes):
            meta = _metadata(value)
    return {"apiVersion": "v1", "kind": "Namespace", "metadata": meta}
