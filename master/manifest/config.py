"""ConfigMap, Secret and ServiceAccount manifests (v1) -> the model's objects.

ConfigMap: `data` (text) and `binaryData` (base64), keys as Kubernetes allows them
(alphanumerics, `-`, `_`, `.`; at most 253 characters), no key in both, at most
1 MiB in all. Secret: `data` (base64, checked) and `stringData` (text, which wins
over `data` for the same key, as in Kubernetes) are kept as base64 in `data`;
`type` is free text (Opaque by default) and the well-known types' required keys
are checked. ServiceAccount: metadata only; its token fields are reported as
not supported. Namespace: metadata only. Error messages and warnings name keys, never a
Secret's values.
"""

from __future__ import annotations

import base64
import binascii
import re
from dataclasses import replace
from typing import Any

from master.manifest.errors import Where
from master.manifest.fields import as_map, as_str, check_fields
from master.manifest.meta import parse_object_meta
from master.manifest.names import check_dns1123_label, check_dns1123_subdomain
from master.model import DEFAULT_NAMESPACE, ConfigMap, Namespace, Secret, ServiceAccount

_KEY = re.compile(r"^[-._a-zA-Z0-9]+\Z")
MAX_DATA_BYTES = 1024 * 1024
# Secret types and the keys Kubernetes requires them to have.
_REQUIRED_KEYS = {
    "kubernetes.io/basic-auth": (),
    "kubernetes.io/ssh-auth": ("ssh-privatekey",),
    "kubernetes.io/tls": ("tls.crt", "tls.key"),
    "kubernetes.io/dockerconfigjson": (".dockerconfigjson",),
    "kubernetes.io/dockercfg": (".dockercfg",),
}


def _check_key(key: str, where: Where) -> None:
    if not _KEY.match(key) or len(key) > 253 or key in (".", ".."):
        raise where.error(
            "a key must consist of alphanumeric characters, '-', '_' or '.' "
            "(at most 253 characters, not '.' or '..')"
        )


def _text_map(value: Any, where: Where) -> dict[str, str]:
    result: dict[str, str] = {}
    for key, item in as_map(value, where).items():
        _check_key(key, where.key(key))
        if item is None:
            item = ""
        if not isinstance(item, str):
            raise where.key(key).error("must be a string (quote numbers and booleans)")
        result[key] = item
    return result


def _base64_map(value: Any, where: Where) -> dict[str, str]:
    """Values that must be base64: kept as given once checked (never shown in errors)."""
    result = _text_map(value, where)
    for key, item in result.items():
        try:
            base64.b64decode(item.encode(), validate=True)
        except (binascii.Error, ValueError):
            raise where.key(key).error("must be base64-encoded (or use stringData)") from None
    return result


def _immutable(data: dict[str, Any], where: Where) -> bool:
    value = data.get("immutable")
    if value is None:
        return False
    if not isinstance(value, bool):
        raise where.key("immutable").error("must be true or false")
    return value


def _check_size(sizes: int, where: Where) -> None:
    if sizes > MAX_DATA_BYTES:
        raise where.error(f"data must be at most {MAX_DATA_BYTES} bytes in all, got {sizes}")


def parse_config_map(data: dict[str, Any], where: Where) -> ConfigMap:
    check_fields(data, where, ("apiVersion", "kind", "metadata", "data", "binaryData", "immutable"))
    meta = parse_object_meta(data.get("metadata"), where.key("metadata"), check_dns1123_subdomain)
    text = _text_map(data.get("data"), where.key("data"))
    binary = _base64_map(data.get("binaryData"), where.key("binaryData"))
    for key in binary:
        if key in text:
            raise where.key("binaryData").key(key).error("is also a key of data")
    _check_size(sum(len(v) for v in (*text.values(), *binary.values())), where.key("data"))
    return ConfigMap(meta, text, binary, _immutable(data, where))


def parse_secret(data: dict[str, Any], where: Where) -> Secret:
    check_fields(
        data,
        where,
        ("apiVersion", "kind", "metadata", "data", "stringData", "type", "immutable"),
    )
    meta = parse_object_meta(data.get("metadata"), where.key("metadata"), check_dns1123_subdomain)
    values = _base64_map(data.get("data"), where.key("data"))
    for key, text in _text_map(data.get("stringData"), where.key("stringData")).items():
        values[key] = base64.b64encode(text.encode()).decode()
    type_ = "Opaque"
    if data.get("type") is not None:
        type_ = as_str(data["type"], where.key("type")) or "Opaque"
    for key in _REQUIRED_KEYS.get(type_, ()):
        if key not in values:
            raise where.key("data").error(f'a Secret of type "{type_}" needs the key "{key}"')
    _check_size(sum(len(v) for v in values.values()), where.key("data"))
    return Secret(meta, type_, values, _immutable(data, where))


def parse_namespace(data: dict[str, Any], where: Where) -> Namespace:
    """A Namespace: its name (a DNS-1123 label); `spec.finalizers` and `status` are what the
    server keeps, accepted and ignored (so `get ns -o yaml` applies again)."""
    check_fields(data, where, ("apiVersion", "kind", "metadata"), (), ("spec", "status"))
    meta = parse_object_meta(data.get("metadata"), where.key("metadata"), check_dns1123_label)
    return Namespace(replace(meta, namespace=DEFAULT_NAMESPACE))


def parse_service_account(data: dict[str, Any], where: Where) -> ServiceAccount:
    check_fields(
        data,
        where,
        ("apiVersion", "kind", "metadata"),
        ("secrets", "imagePullSecrets", "automountServiceAccountToken"),
    )
    meta = parse_object_meta(data.get("metadata"), where.key("metadata"), check_dns1123_subdomain)
    return ServiceAccount(meta)
