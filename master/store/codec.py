"""Bytes <-> model objects for the store: compact JSON, generic over master/model.py.

The store persists frozen dataclasses; this module turns one into compact JSON
bytes and back. It is generic: it walks `dataclasses.fields` and
`typing.get_type_hints` of each class once, compiles a small converter per field
(nested dataclasses, `tuple[X, ...]`, `dict[str, V]`, StrEnums, int/float/str/
bool and `X | None`) and caches it, so adding a field to the model needs no
change here and decoding ten thousand pods at master start stays cheap.

Compatibility rules, so one version of the master can read another's data:
keys the class does not know are ignored (a newer master wrote them), and
fields missing from the data take the field's default (an older master wrote
it). Every field is written, defaults included, so a changed default never
changes the meaning of stored data. Values are type-checked both ways: a wrong
type refuses to be stored rather than poisoning the next start.

Flow: `encode(obj)` -> class plan -> plain JSON value -> bytes;
`decode(kind, bytes)` -> JSON value -> class plan -> `KINDS[kind](**fields)`.
"""

from __future__ import annotations

import collections.abc
import dataclasses
import enum
import json
import types
import typing
from collections.abc import Callable, Sequence
from typing import Any

from kernel.identity_memo import by_identity
from master.model import KINDS, StoredObject

Converter = Callable[[Any], Any]


class CodecError(ValueError):
    """A value does not fit its declared type (when storing) or the data is malformed.

    `path` locates the value inside the object (`spec.containers[0].image`)."""

    def __init__(self, reason: str, path: str = "") -> None:
        super().__init__(f"{path}: {reason}" if path else reason)
        self.reason = reason
        self.path = path

    def under(self, segment: str) -> CodecError:
        """The same error seen from the enclosing value (`segment` is a name or `[i]`)."""
        if not self.path:
            path = segment
        elif self.path.startswith("["):
            path = segment + self.path
        else:
            path = f"{segment}.{self.path}"
        return CodecError(self.reason, path)


def encode(obj: StoredObject) -> bytes:
    """Compact JSON for one stored object (its kind is not included; the store keys by it).

    A field holding a value many objects share (a pod's spec: SHARED_VALUES) is written
    as the JSON text remembered for that value, ahead of the others, instead of being
    serialised again with every object (a third of a pod's JSON, each of its writes)."""
    value = _codec_for(type(obj)).encode(obj)
    parts = [f'"{name}":{_shared_text(value.pop(name))}' for name in _spliced_fields(type(obj))]
    meta = value.get("meta")
    ledger = obj.meta.managed_fields
    if ledger and type(meta) is dict:
        # The managedFields ledger: one tuple for the objects written alike in a second
        # (master/api/fieldowners.py remembers them), its text remembered by the tuple.
        meta = dict(meta)  # (a copy: the codec's answer is never changed in place)
        ledger_text = _shared_text(meta.pop("managed_fields"), ledger)
        others = _DUMPS(meta)
        del value["meta"]
        parts.append(
            f'"meta":{{"managed_fields":{ledger_text}'
            + ("," + others[1:-1] if others != "{}" else "")
            + "}"
        )
    if not parts:
        return _DUMPS(value).encode()
    rest = _DUMPS(value)
    if rest != "{}":
        parts.append(rest[1:-1])
    return ("{" + ",".join(parts) + "}").encode()


def decode(kind: str, data: bytes) -> StoredObject:
    """The object of `kind` stored as `data` by `encode` (of this or another version)."""
    cls = KINDS.get(kind)
    if cls is None:
        raise CodecError(f"unknown kind {kind!r}")
    try:
        value = _LOADS(data.decode())
    except ValueError as e:
        raise CodecError(f"not valid JSON: {e}") from e
    obj: StoredObject = _codec_for(cls).decode(value)
    return obj


_DUMPS = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False).encode
_LOADS = json.JSONDecoder().decode


# -- per-class plans ------------------------------------------------------------------


_MISSING: Any = dataclasses.MISSING


@dataclasses.dataclass(frozen=True, slots=True)
class _Field:
    name: str
    # Values of exactly this type are stored as they are; skipping the converter
    # call for plain str/int/float/bool fields is most of the codec's speed.
    exact: type | None
    encode: Converter
    decode: Converter
    default: Any
    default_factory: Any


class _DataclassCodec:
    """Encoder/decoder for one dataclass; fields are filled in after registration
    so that a class may (indirectly) refer to itself."""

    __slots__ = ("cls", "fields", "plan")

    def __init__(self, cls: type) -> None:
        self.cls = cls
        self.fields: tuple[_Field, ...] = ()
        self.plan: tuple[tuple[str, Any, Converter, Converter], ...] = ()

    def set_fields(self, fields: tuple[_Field, ...]) -> None:
        self.fields = fields
        self.plan = tuple((f.name, f.exact, f.encode, f.decode) for f in fields)

    def encode(self, obj: Any) -> dict[str, Any]:
        if type(obj) is not self.cls:
            raise CodecError(f"expected {self.cls.__name__}, got {type(obj).__name__}")
        out: dict[str, Any] = {}
        for name, exact, enc, _ in self.plan:
            v = getattr(obj, name)
            if type(v) is exact:
                out[name] = v
                continue
            try:
                out[name] = enc(v)
            except CodecError as e:
                raise e.under(name) from None
        return out

    def decode(self, value: Any) -> Any:
        if type(value) is not dict:
            raise CodecError(
                f"expected an object for {self.cls.__name__}, got {type(value).__name__}"
            )
        kwargs: dict[str, Any] = {}
        missing = False
        for name, exact, _, dec in self.plan:
            raw = value.get(name, _MISSING)
            if type(raw) is exact:
                kwargs[name] = raw
            elif raw is _MISSING:
                missing = True
            else:
                try:
                    kwargs[name] = dec(raw)
                except CodecError as e:
                    raise e.under(name) from None
        if missing:
            # Written by an older version: fields it did not know take their defaults.
            for f in self.fields:
                if f.name in kwargs:
                    continue
                if f.default is not _MISSING:
                    kwargs[f.name] = f.default
                elif f.default_factory is not _MISSING:
                    kwargs[f.name] = f.default_factory()
                else:
                    raise CodecError("required field is missing", f.name)
        return self.cls(**kwargs)


_codecs: dict[type, _DataclassCodec] = {}


def _codec_for(cls: type) -> _DataclassCodec:
    codec = _codecs.get(cls)
    if codec is None:
        if not dataclasses.is_dataclass(cls):
            raise CodecError(f"{cls.__name__} is not a model dataclass")
        codec = _DataclassCodec(cls)
        _codecs[cls] = codec
        try:
            hints = typing.get_type_hints(cls)
            codec.set_fields(
                tuple(
                    _Field(
                        name=f.name,
                        exact=_EXACT.get(hints[f.name]),
                        encode=_encoder(hints[f.name]),
                        decode=_decoder(hints[f.name]),
                        default=f.default,
                        default_factory=f.default_factory,
                    )
                    for f in dataclasses.fields(cls)
                )
            )
        except BaseException:
            del _codecs[cls]
            raise
    return codec


_EXACT: dict[Any, type] = {str: str, int: int, float: float, bool: bool}


# -- converters per type ---------------------------------------------------------------


def _encoder(tp: Any) -> Converter:
    origin = typing.get_origin(tp)
    if tp is str:
        return _enc_str
    if tp is bool:
        return _check_bool
    if tp is int:
        return _check_int
    if tp is float:
        return _to_float
    if isinstance(tp, type) and issubclass(tp, enum.Enum):
        return _enum_encoder(tp)
    if isinstance(tp, type) and dataclasses.is_dataclass(tp):
        if tp.__name__ in SHARED_VALUES:
            return _remembering(_codec_for(tp).encode)
        return _codec_for(tp).encode
    if origin is tuple:
        return _seq_converter(_encoder(_tuple_item(tp)), tuple, list)
    if origin in (dict, collections.abc.Mapping):
        return _dict_converter(_encoder(_dict_value(tp)), _EXACT.get(_dict_value(tp)))
    if origin in (types.UnionType, typing.Union):
        return _optional_converter(_encoder(_optional_inner(tp)))
    raise TypeError(f"the store codec does not support the type {tp!r}")


# Model classes whose instances many stored objects hold at once: the pods of one
# Deployment carry its template's PodSpec itself (master/controllers/deployment.py), and
# the store wrote the same spec again for each pod and each of its status writes.
SHARED_VALUES = frozenset({"PodSpec"})
# How many such values an encoder remembers (then it starts over).
SHARED_MEMO = 256


def _remembering(encode: Converter) -> Converter:
    """`encode`, remembering its answer for the last values it was given, by identity.

    The values are immutable and kept alive by the memo (so an id is never reused while
    it is remembered); the answer is only ever read (serialised into JSON)."""
    memo: dict[int, tuple[Any, Any]] = {}

    def enc(v: Any) -> Any:
        return by_identity(memo, v, encode, v, SHARED_MEMO)

    return enc


def _spliced_fields(cls: type) -> tuple[str, ...]:
    """The fields of `cls` whose declared class is one of SHARED_VALUES (always there:
    a dataclass field, never None)."""
    found = _SPLICED.get(cls)
    if found is None:
        hints = typing.get_type_hints(cls)
        found = tuple(
            f.name
            for f in dataclasses.fields(cls)
            if isinstance(hints[f.name], type) and hints[f.name].__name__ in SHARED_VALUES
        )
        _SPLICED[cls] = found
    return found


_SPLICED: dict[type, tuple[str, ...]] = {}
# JSON texts of the shared values' encodings, by the identity of the encoding (one dict
# per shared value, remembered by _remembering), each beside it: kept alive, so an id is
# never another's while remembered.
_TEXTS: dict[int, tuple[Any, Any]] = {}


def _shared_text(value: Any, source: Any = None) -> str:
    """The JSON text of `value`, the encoding of `source` (by default `value` itself: a
    shared value's remembered encoding), remembered by the identity of `source`."""
    text: str = by_identity(_TEXTS, value if source is None else source, _DUMPS, value, SHARED_MEMO)
    return text


def _decoder(tp: Any) -> Converter:
    origin = typing.get_origin(tp)
    if tp is str:
        return _check_str
    if tp is bool:
        return _check_bool
    if tp is int:
        return _check_int
    if tp is float:
        return _to_float
    if isinstance(tp, type) and issubclass(tp, enum.Enum):
        return _enum_decoder(tp)
    if isinstance(tp, type) and dataclasses.is_dataclass(tp):
        return _codec_for(tp).decode
    if origin is tuple:
        return _seq_converter(_decoder(_tuple_item(tp)), list, tuple)
    if origin in (dict, collections.abc.Mapping):
        return _dict_converter(_decoder(_dict_value(tp)), _EXACT.get(_dict_value(tp)))
    if origin in (types.UnionType, typing.Union):
        return _optional_converter(_decoder(_optional_inner(tp)))
    raise TypeError(f"the store codec does not support the type {tp!r}")


def _tuple_item(tp: Any) -> Any:
    args = typing.get_args(tp)
    if len(args) != 2 or args[1] is not Ellipsis:
        raise TypeError(f"the store codec supports only tuple[X, ...], not {tp!r}")
    return args[0]


def _dict_value(tp: Any) -> Any:
    key, value = typing.get_args(tp)
    if key is not str:
        raise TypeError(f"the store codec supports only dicts keyed by str, not {tp!r}")
    return value


def _optional_inner(tp: Any) -> Any:
    args = [a for a in typing.get_args(tp) if a is not type(None)]
    if len(args) != 1 or len(typing.get_args(tp)) != 2:
        raise TypeError(f"the store codec supports only `X | None` unions, not {tp!r}")
    return args[0]


def _describe(v: Any) -> str:
    return f"{type(v).__name__} {v!r}"[:80]


def _check_str(v: Any) -> str:
    if type(v) is str:
        return v
    raise CodecError(f"expected a string, got {_describe(v)}")


def _enc_str(v: Any) -> str:
    if type(v) is str:
        return v
    # A StrEnum member in a plain str field is stored as its value.
    if isinstance(v, str):
        return str(v)
    raise CodecError(f"expected a string, got {_describe(v)}")


def _check_bool(v: Any) -> bool:
    if type(v) is bool:
        return v
    raise CodecError(f"expected a boolean, got {_describe(v)}")


def _check_int(v: Any) -> int:
    if type(v) is int:
        return v
    if isinstance(v, int) and not isinstance(v, bool):
        return int(v)
    raise CodecError(f"expected an integer, got {_describe(v)}")


def _to_float(v: Any) -> float:
    if type(v) is float:
        return v
    # JSON writes 1.0 as 1.0, but a hand-edited or older record may hold 1.
    if isinstance(v, int | float) and not isinstance(v, bool):
        return float(v)
    raise CodecError(f"expected a number, got {_describe(v)}")


def _enum_encoder(cls: type[enum.Enum]) -> Converter:
    def enc(v: Any) -> Any:
        if isinstance(v, cls):
            return v.value
        # A plain value that names a member ("Running") is as good as the member.
        try:
            return cls(v).value
        except (ValueError, TypeError):
            raise CodecError(f"expected {cls.__name__}, got {_describe(v)}") from None

    return enc


def _enum_decoder(cls: type[enum.Enum]) -> Converter:
    def dec(v: Any) -> Any:
        try:
            return cls(v)
        except (ValueError, TypeError):
            raise CodecError(f"{v!r} is not a {cls.__name__}") from None

    return dec


def _seq_converter(
    item: Converter, accept: type[Sequence[Any]], make: Callable[[Any], Any]
) -> Converter:
    # Strict both ways: the model holds tuples (hashable, frozen), JSON holds lists;
    # a list inside a model object would not survive the round trip unchanged.
    def conv(v: Any) -> Any:
        if type(v) is not accept:
            raise CodecError(f"expected a {accept.__name__}, got {_describe(v)}")
        seq: Sequence[Any] = v
        if not seq:
            return make(())
        out: list[Any] = []
        for i, x in enumerate(seq):
            try:
                out.append(item(x))
            except CodecError as e:
                raise e.under(f"[{i}]") from None
        return make(out)

    return conv


def _dict_converter(value: Converter, exact: type | None) -> Converter:
    def conv(v: Any) -> dict[str, Any]:
        if type(v) is not dict:
            raise CodecError(f"expected a mapping, got {_describe(v)}")
        # Labels and port maps: the common all-plain case needs no new dict.
        if exact is not None:
            for k, x in v.items():
                if type(k) is not str or type(x) is not exact:
                    break
            else:
                return v  # encode output is serialised at once; decode input is fresh
        out: dict[str, Any] = {}
        for k, x in v.items():
            if type(k) is not str:
                raise CodecError(f"expected string keys, got {_describe(k)}")
            try:
                out[k] = value(x)
            except CodecError as e:
                raise e.under(f"[{k!r}]") from None
        return out

    return conv


def _optional_converter(inner: Converter) -> Converter:
    def conv(v: Any) -> Any:
        return None if v is None else inner(v)

    return conv
