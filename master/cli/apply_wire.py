"""ApplyManifests' two messages on the wire, for `pinnace apply`, without the protobuf runtime.

`apply` is the command on the way to a running pod, and importing google.protobuf (its
descriptor pool, the pure-Python message machinery it loads even with upb, and
protos/cluster_pb2's descriptors of every message of the service) was ~20 ms of the CLI's
~85 ms of start-up CPU before it could send (issue 15: apply -> 3 running). The request is
three fields and the reply two, so `apply` writes and reads them itself, in protobuf's
wire format, and hands them to gRPC as the method's serializers; every other verb uses
the generated stubs.

The encoding is the one the generated classes produce (fields in number order, proto3's
defaults omitted), and the decoding reads what any encoder may send: fields in any order,
unknown fields skipped. tests/unit/test_cli_apply_wire.py checks both against
protos/cluster_pb2 and fails when protos/cluster.proto changes these messages.
"""

from __future__ import annotations

from kernel.records import NamedTuple

METHOD = "/pinnace.v1.ClusterService/ApplyManifests"

# Wire types (protobuf encoding): varint, 64-bit, length-delimited, 32-bit.
_VARINT, _I64, _LEN, _I32 = 0, 1, 2, 5


class WireError(ValueError):
    """A reply that is not an ApplyManifestsResponse in protobuf's wire format."""


# NamedTuples, not dataclasses: making four dataclasses was ~3 ms of apply's start-up.
class SourceFile(NamedTuple):
    name: str
    content: bytes


class ApplyRequest(NamedTuple):
    files: tuple[SourceFile, ...]
    dry_run: bool = False
    namespace: str = ""


class ObjectResult(NamedTuple):
    kind: str = ""
    name: str = ""
    action: str = ""
    namespace: str = ""


class ApplyResponse(NamedTuple):
    results: tuple[ObjectResult, ...] = ()
    warnings: tuple[str, ...] = ()


def _varint(value: int) -> bytes:
    out = bytearray()
    while value > 0x7F:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def _field(number: int, payload: bytes) -> bytes:
    """A length-delimited field (string, bytes, message)."""
    return _varint(number << 3 | _LEN) + _varint(len(payload)) + payload


def encode_request(request: ApplyRequest) -> bytes:
    """An ApplyManifestsRequest, byte for byte as cluster_pb2 serializes it."""
    parts = []
    for f in request.files:
        body = b""
        if f.name:
            body += _field(1, f.name.encode())
        if f.content:
            body += _field(2, f.content)
        parts.append(_field(1, body))
    if request.dry_run:
        parts.append(_varint(2 << 3 | _VARINT) + b"\x01")
    if request.namespace:
        parts.append(_field(3, request.namespace.encode()))
    return b"".join(parts)


def _read_varint(data: bytes, pos: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        if pos >= len(data) or shift > 63:
            raise WireError("truncated or overlong varint")
        byte = data[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return value, pos
        shift += 7


def _fields(data: bytes) -> list[tuple[int, bytes]]:
    """The length-delimited fields of a message, in order; other wire types are skipped."""
    found: list[tuple[int, bytes]] = []
    pos = 0
    while pos < len(data):
        key, pos = _read_varint(data, pos)
        number, wire = key >> 3, key & 7
        if number == 0:
            raise WireError("field number 0")
        if wire == _VARINT:
            _, pos = _read_varint(data, pos)
            continue
        if wire == _LEN:
            size, pos = _read_varint(data, pos)
            end = pos + size
        elif wire in (_I64, _I32):
            end = pos + (8 if wire == _I64 else 4)
        else:
            raise WireError(f"field {number}: unsupported wire type {wire}")
        if end > len(data):
            raise WireError(f"field {number}: truncated")
        if wire == _LEN:
            found.append((number, data[pos:end]))
        pos = end
    return found


def _text(payload: bytes) -> str:
    try:
        return payload.decode()
    except UnicodeDecodeError:
        raise WireError("a string field is not UTF-8") from None


def _object_result(data: bytes) -> ObjectResult:
    values = {1: "", 2: "", 3: "", 4: ""}
    for number, payload in _fields(data):
        if number in values:
            values[number] = _text(payload)  # the last one wins, as in protobuf
    return ObjectResult(kind=values[1], name=values[2], action=values[3], namespace=values[4])


def decode_response(data: bytes) -> ApplyResponse:
    """An ApplyManifestsResponse as cluster_pb2 would parse it (unknown fields skipped)."""
    results: list[ObjectResult] = []
    warnings: list[str] = []
    for number, payload in _fields(data):
        if number == 1:
            results.append(_object_result(payload))
        elif number == 2:
            warnings.append(_text(payload))
    return ApplyResponse(tuple(results), tuple(warnings))
