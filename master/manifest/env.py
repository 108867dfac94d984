"""A container's environment in a manifest: `env` (value or valueFrom) and `envFrom`.

Checked as Kubernetes checks them at create time: a variable has either a `value`
or a `valueFrom` with exactly one source -- `configMapKeyRef` / `secretKeyRef`
(name, key, optional), `fieldRef` (the paths Kubernetes allows for env:
metadata.name/namespace/uid, metadata.labels['...'], metadata.annotations['...'],
spec.nodeName, spec.serviceAccountName, status.hostIP(s), status.podIP(s)) or
`resourceFieldRef` (limits/requests of cpu and memory, an optional container name
and divisor). `envFrom` takes a `configMapRef` or `secretRef` and a `prefix`.
Values are not looked up here: the master resolves them when it sends the pod to
its node (master/app/podenv.py), and `$(VAR)` references stay as written for the
agent to expand, as the kubelet does.
"""

from __future__ import annotations

import re
from typing import Any

from master.manifest.errors import Where, describe
from master.manifest.fields import as_list, as_map, as_str, check_fields, require
from master.manifest.names import check_dns1123_subdomain, check_env_name
from master.manifest.quantities import QuantityError, parse_quantity_cpu, parse_quantity_memory
from master.model import EnvFromSource, EnvVar, EnvVarSource

_SOURCES = ("configMapKeyRef", "secretKeyRef", "fieldRef", "resourceFieldRef")
FIELD_PATHS = (
    "metadata.name", "metadata.namespace", "metadata.uid", "spec.nodeName",
    "spec.serviceAccountName", "status.hostIP", "status.hostIPs", "status.podIP",
    "status.podIPs",
)  # fmt: skip
SUBSCRIPTED = re.compile(r"^metadata\.(labels|annotations)\['([^']+)'\]\Z")
RESOURCES = ("limits.cpu", "limits.memory", "requests.cpu", "requests.memory")
_KEY = re.compile(r"^[-._a-zA-Z0-9]+\Z")


def _optional(data: dict[str, Any], where: Where) -> bool:
    value = data.get("optional")
    if value is not None and not isinstance(value, bool):
        raise where.key("optional").error("must be true or false")
    return bool(value)


def _object_name(data: dict[str, Any], where: Where) -> str:
    name = as_str(require(data, "name", where), where.key("name"))
    check_dns1123_subdomain(name, where.key("name"))
    return name


def _key_ref(kind: str, data: dict[str, Any], where: Where) -> EnvVarSource:
    check_fields(data, where, ("name", "key", "optional"))
    key = as_str(require(data, "key", where), where.key("key"))
    if not _KEY.match(key):
        raise where.key("key").error(
            f"must consist of alphanumeric characters, '-', '_' or '.', got {describe(key)}"
        )
    return EnvVarSource(
        kind, name=_object_name(data, where), key=key, optional=_optional(data, where)
    )


def _field_ref(data: dict[str, Any], where: Where) -> EnvVarSource:
    check_fields(data, where, ("fieldPath", "apiVersion"))
    if data.get("apiVersion") not in (None, "v1"):
        raise where.key("apiVersion").error(f'must be "v1", got {describe(data["apiVersion"])}')
    path = as_str(require(data, "fieldPath", where), where.key("fieldPath"))
    if path not in FIELD_PATHS and not SUBSCRIPTED.match(path):
        raise where.key("fieldPath").error(
            f"{describe(path)} is not supported for env; use one of {', '.join(FIELD_PATHS)}, "
            "metadata.labels['KEY'] or metadata.annotations['KEY']"
        )
    return EnvVarSource("fieldRef", field_path=path)


def resource_ref(data: dict[str, Any], where: Where) -> EnvVarSource:
    check_fields(data, where, ("resource", "containerName", "divisor"))
    resource = as_str(require(data, "resource", where), where.key("resource"))
    if resource not in RESOURCES:
        raise where.key("resource").error(
            f"must be one of {', '.join(RESOURCES)}, got {describe(resource)}"
        )
    container = ""
    if data.get("containerName") is not None:
        container = as_str(data["containerName"], where.key("containerName"))
    divisor = ""
    if data.get("divisor") is not None:
        raw = data["divisor"]
        divisor = str(raw) if isinstance(raw, int) and not isinstance(raw, bool) else ""
        divisor = divisor or as_str(raw, where.key("divisor"))
        try:
            amount = (
                parse_quantity_cpu(divisor)
                if resource.endswith("cpu")
                else parse_quantity_memory(divisor)
            )
        except QuantityError as exc:
            raise where.key("divisor").error(str(exc)) from None
        if amount <= 0:
            raise where.key("divisor").error("must be greater than zero")
    return EnvVarSource(
        "resourceFieldRef", resource=resource, container_name=container, divisor=divisor
    )


def _value_from(value: Any, where: Where) -> EnvVarSource:
    data = as_map(value, where)
    check_fields(data, where, _SOURCES)
    given = [k for k in _SOURCES if data.get(k) is not None]
    if len(given) != 1:
        raise where.error(f"must have exactly one of {', '.join(_SOURCES)}")
    kind = given[0]
    at = where.key(kind)
    source = as_map(data[kind], at)
    if kind in ("configMapKeyRef", "secretKeyRef"):
        return _key_ref(kind, source, at)
    if kind == "fieldRef":
        return _field_ref(source, at)
    return resource_ref(source, at)


def parse_env(value: Any, where: Where) -> tuple[EnvVar, ...]:
    env: list[EnvVar] = []
    for i, item in enumerate(as_list(value, where)):
        at = where.index(i)
        data = as_map(item, at)
        check_fields(data, at, ("name", "value", "valueFrom"))
        name = as_str(require(data, "name", at), at.key("name"))
        check_env_name(name, at.key("name"))
        raw = data.get("value")
        text = "" if raw is None else as_str(raw, at.key("value"))
        source = None
        if data.get("valueFrom") is not None:
            if text:
                raise at.key("valueFrom").error("may not be set when value is not empty")
            source = _value_from(data["valueFrom"], at.key("valueFrom"))
        env.append(EnvVar(name, text, source))
    return tuple(env)


def parse_env_from(value: Any, where: Where) -> tuple[EnvFromSource, ...]:
    sources: list[EnvFromSource] = []
    for i, item in enumerate(as_list(value, where)):
        at = where.index(i)
        data = as_map(item, at)
        check_fields(data, at, ("configMapRef", "secretRef", "prefix"))
        given = [k for k in ("configMapRef", "secretRef") if data.get(k) is not None]
        if len(given) != 1:
            raise at.error("must have exactly one of configMapRef, secretRef")
        ref_at = at.key(given[0])
        ref = as_map(data[given[0]], ref_at)
        check_fields(ref, ref_at, ("name", "optional"))
        prefix = ""
        if data.get("prefix") is not None:
            prefix = as_str(data["prefix"], at.key("prefix"))
            if prefix:
                check_env_name(prefix, at.key("prefix"))
        sources.append(
            EnvFromSource(given[0], _object_name(ref, ref_at), prefix, _optional(ref, ref_at))
        )
    return tuple(sources)
