"""Protobuf request bodies, read with Kubernetes' own schema and written as Kubernetes' JSON.

kubectl's typed requests (`kubectl create deployment|service|configmap|secret|namespace`,
`expose`, `run`) send `Content-Type: application/vnd.kubernetes.protobuf` for built-in
kinds: client-go's typed clients default to it, ask no discovery first and do not retry
with JSON on a 415 (seen with `kubectl -v=9`, 1.32 and 1.37), because every Kubernetes
API server reads protobuf for its built-in kinds. So pinnace reads it too.

The body is `k8s\\0` + runtime.Unknown{typeMeta, raw}; raw is the object's message,
decoded with the protobuf package from Kubernetes' published generated.proto
(protos/kubernetes, compiled by `make protos`). The message is then written as Go's
encoding/json would write the Go object behind it, which the .proto alone cannot say;
protos/kubernetes/gofields.json brings the two facts from Kubernetes' Go types:
embedded structs whose fields JSON inlines, and pointer fields, the only ones where a
zero is a value (`replicas: 0`) rather than "not set". Kubernetes' own JSON forms of
Quantity, IntOrString, Time, MicroTime, Duration, FieldsV1 and RawExtension are kept.
"""

from __future__ import annotations

import base64
import datetime
import functools
import json
from collections.abc import Mapping
from dataclasses import dataclass
from importlib import resources
from typing import Any

from google.protobuf import descriptor_pb2, descriptor_pool, message, message_factory
from google.protobuf.descriptor import FieldDescriptor

MAGIC = b"k8s\x00"
_UNKNOWN = "k8s.io.apimachinery.pkg.runtime.Unknown"
_META = "k8s.io.apimachinery.pkg.apis.meta.v1"


class ProtobufError(ValueError):
    """Not a body this reader understands."""


@dataclass(frozen=True, slots=True)
class _Schema:
    pool: descriptor_pool.DescriptorPool
    inline: Mapping[str, frozenset[int]]
    pointer: Mapping[str, frozenset[int]]


@functools.cache
def _schema() -> _Schema:
    files = resources.files("protos.kubernetes")
    descriptors = descriptor_pb2.FileDescriptorSet.FromString(
        files.joinpath("descriptors.binpb").read_bytes()
    )
    pool = descriptor_pool.DescriptorPool()
    for file in descriptors.file:  # protoc writes them dependencies first
        pool.Add(file)
    pool.Add(_eviction_file())
    go = json.loads(files.joinpath("gofields.json").read_text())
    return _Schema(
        pool,
        {k: frozenset(v) for k, v in go["inline"].items()},
        {k: frozenset(v) for k, v in go["pointer"].items()},
    )


def _eviction_file() -> descriptor_pb2.FileDescriptorProto:
    """policy/v1's Eviction, the one message of that group pinnace reads (the body of
    `POST .../pods/NAME/eviction`, which `kubectl drain` sends as protobuf). Its two
    fields, as k8s.io/api/policy/v1/generated.proto numbers them, are apimachinery's
    (vendored), so the group's whole schema (PodDisruptionBudget ...) is not vendored."""
    meta = "k8s.io/apimachinery/pkg/apis/meta/v1/generated.proto"
    file = descriptor_pb2.FileDescriptorProto(
        name="pinnace/k8s.io/api/policy/v1/eviction.proto",
        package="k8s.io.api.policy.v1",
        dependency=[meta],
        syntax="proto2",
    )
    eviction = file.message_type.add(name="Eviction")
    for number, name, type_name in (
        (1, "metadata", f".{_META}.ObjectMeta"),
        (2, "deleteOptions", f".{_META}.DeleteOptions"),
    ):
        eviction.field.add(
            name=name,
            number=number,
            label=descriptor_pb2.FieldDescriptorProto.LABEL_OPTIONAL,
            type=descriptor_pb2.FieldDescriptorProto.TYPE_MESSAGE,
            type_name=type_name,
        )
    return file


# Kinds of apimachinery's meta/v1 that arrive as bodies of other groups' requests (a
# typed client's DELETE sends DeleteOptions under its own group's apiVersion).
_META_KINDS = frozenset({"DeleteOptions"})


def message_name(api_version: str, kind: str) -> str:
    """`apps/v1`, `Deployment` -> k8s.io.api.apps.v1.Deployment (networking.k8s.io ->
    networking), as Kubernetes names its generated messages."""
    if kind in _META_KINDS:
        return f"{_META}.{kind}"
    group, _, version = api_version.rpartition("/")
    package = group.split(".", 1)[0] if group else "core"
    return f"k8s.io.api.{package}.{version}.{kind}"


def _decode(data: bytes, full_name: str) -> message.Message:
    pool = _schema().pool
    try:
        descriptor = pool.FindMessageTypeByName(full_name)
    except KeyError:
        raise ProtobufError(f"no protobuf schema for {full_name}") from None
    try:
        return message_factory.GetMessageClass(descriptor).FromString(data)
    except message.DecodeError as e:
        raise ProtobufError(f"a {descriptor.name} that does not decode: {e}") from None


def decode(body: bytes) -> dict[str, Any]:
    """The JSON-shaped object a protobuf body holds; ProtobufError when it is not one."""
    if not body.startswith(MAGIC):
        raise ProtobufError("the body lacks Kubernetes' protobuf envelope")
    unknown: Any = _decode(body[len(MAGIC) :], _UNKNOWN)
    type_meta = unknown.typeMeta
    api_version, kind = str(type_meta.apiVersion), str(type_meta.kind)
    if not api_version or not kind:
        raise ProtobufError("the body does not name its apiVersion and kind")
    obj = to_json(_decode(bytes(unknown.raw), message_name(api_version, kind)))
    return {"apiVersion": api_version, "kind": kind, **obj}


def _is_zero(value: Any) -> bool:
    return value is None or value in ("", 0, {}, [])


def to_json(msg: message.Message) -> dict[str, Any]:
    """What Kubernetes' JSON encoding of the same object holds (zeros of non-pointer fields
    left out: Go cannot tell them from "not set" either)."""
    schema = _schema()
    descriptor = msg.DESCRIPTOR
    inline = schema.inline.get(descriptor.full_name, frozenset())
    pointer = schema.pointer.get(descriptor.full_name, frozenset())
    out: dict[str, Any] = {}
    for field, value in msg.ListFields():
        converted = _field(field, value)
        if field.number in inline and isinstance(converted, dict):
            out.update(converted)
        elif (field.number in pointer and converted is not None) or not _is_zero(converted):
            out[field.name] = converted
    return out


def _field(field: FieldDescriptor, value: Any) -> Any:
    if field.message_type is not None and field.message_type.GetOptions().map_entry:
        value_field = field.message_type.fields_by_name["value"]
        return {str(k): _single(value_field, v) for k, v in value.items()}
    if field.is_repeated:
        return [_single(field, v) for v in value]
    return _single(field, value)


def _single(field: FieldDescriptor, value: Any) -> Any:
    if field.type == FieldDescriptor.TYPE_BYTES:
        return base64.b64encode(value).decode()  # Go's []byte in JSON
    if field.type != FieldDescriptor.TYPE_MESSAGE or field.message_type is None:
        return value
    special = _SPECIAL.get(field.message_type.full_name)
    return special(value) if special else to_json(value)


def _time(msg: Any, micro: bool) -> str | None:
    if msg.seconds == 0 and msg.nanos == 0:
        return None  # Go's zero time is written as null
    at = datetime.datetime.fromtimestamp(msg.seconds, datetime.UTC)
    if micro:
        return at.strftime("%Y-%m-%dT%H:%M:%S") + f".{msg.nanos // 1000:06d}Z"
    return at.strftime("%Y-%m-%dT%H:%M:%SZ")


def _duration(msg: Any) -> str:
    """Go's time.Duration.String() for whole seconds and below ("1h2m3s", "1.5s", "0s")."""
    nanos = int(msg.duration)
    sign, nanos = ("-", -nanos) if nanos < 0 else ("", nanos)
    hours, rest = divmod(nanos, 3_600_000_000_000)
    minutes, rest = divmod(rest, 60_000_000_000)
    seconds = f"{rest / 1e9:.9f}".rstrip("0").rstrip(".")
    text = (f"{hours}h" if hours else "") + (f"{minutes}m" if hours or minutes else "")
    return f"{sign}{text}{seconds}s"


def _embedded_json(raw: bytes) -> Any:
    if not raw:
        return None
    try:
        return json.loads(raw)
    except ValueError:
        raise ProtobufError("an embedded object is not JSON") from None


_SPECIAL: dict[str, Any] = {
    "k8s.io.apimachinery.pkg.api.resource.Quantity": lambda m: m.string,
    "k8s.io.apimachinery.pkg.util.intstr.IntOrString": (
        lambda m: m.strVal if m.type == 1 else m.intVal
    ),
    f"{_META}.Time": lambda m: _time(m, micro=False),
    f"{_META}.MicroTime": lambda m: _time(m, micro=True),
    f"{_META}.Duration": _duration,
    f"{_META}.FieldsV1": lambda m: _embedded_json(m.Raw),
    "k8s.io.apimachinery.pkg.runtime.RawExtension": lambda m: _embedded_json(m.raw),
}
