"""A container's readinessProbe and livenessProbe: Kubernetes' Probe, validated.

`parse_probe(value, where, liveness, ports)` turns one probe map into the model's
Probe, with Kubernetes' defaults (period 10 s, timeout 1 s, success 1, failure 3)
and Kubernetes' rules: exactly one handler (httpGet, tcpSocket or exec), a port
that is a number from 1 to 65535 or the name of one of this container's ports,
thresholds and period of at least 1, and a liveness successThreshold of exactly 1.
What pinnace cannot honour faithfully is refused rather than dropped, since a
probe that checks something else than the user asked is worse than none: the
grpc handler, HTTPS, and a `host` other than the pod. A probe-level
terminationGracePeriodSeconds is only a warning (the pod's grace period applies).
"""

from __future__ import annotations

import re
from typing import Any

from master.manifest.errors import Where, describe
from master.manifest.fields import as_int, as_list, as_map, as_str, check_fields, require
from master.model import ContainerPort, HTTPHeader, Probe, ProbeKind

HANDLERS = ("httpGet", "tcpSocket", "exec")
PROBE_SUPPORTED = (
    *HANDLERS,
    "initialDelaySeconds",
    "timeoutSeconds",
    "periodSeconds",
    "successThreshold",
    "failureThreshold",
)
PROBE_UNSUPPORTED = ("terminationGracePeriodSeconds",)
# RFC 7230's token: what an HTTP header name may be made of.
_HEADER_NAME = re.compile(r"^[!#$%&'*+.^_`|~0-9A-Za-z-]+\Z")


def _port(value: Any, where: Where, ports: tuple[ContainerPort, ...]) -> str:
    """A port number (kept as text) or the name of a port this container declares."""
    if isinstance(value, int) and not isinstance(value, bool):
        return str(as_int(value, where, 1, 65535))
    if not isinstance(value, str):
        raise where.error(
            f"must be a port number from 1 to 65535 or a container port name, got {describe(value)}"
        )
    named = [p for p in ports if p.name == value]
    if not named:
        known = ", ".join(f'"{p.name}"' for p in ports if p.name)
        hint = f" (its named ports: {known})" if known else " (it declares no named ports)"
        raise where.error(f"no port of this container is named {describe(value)}{hint}")
    if named[0].protocol != "TCP":
        raise where.error(f"port {describe(value)} is {named[0].protocol}; probes need TCP")
    return value


def _host(data: dict[str, Any], where: Where) -> None:
    if data.get("host") not in (None, ""):
        raise where.key("host").error(
            "not supported yet; leave it out to probe the pod's own address"
        )


def _headers(value: Any, where: Where) -> tuple[HTTPHeader, ...]:
    headers: list[HTTPHeader] = []
    for i, item in enumerate(as_list(value, where)):
        at = where.index(i)
        data = as_map(item, at)
        check_fields(data, at, ("name", "value"))
        name = as_str(require(data, "name", at), at.key("name"))
        if not _HEADER_NAME.match(name):
            raise at.key("name").error(f"must be a valid HTTP header name, got {describe(name)}")
        raw = data.get("value")
        text = "" if raw is None else as_str(raw, at.key("value"))
        if "\r" in text or "\n" in text:
            raise at.key("value").error("must not contain line breaks")
        headers.append(HTTPHeader(name, text))
    return tuple(headers)


def _http_get(value: Any, where: Where, ports: tuple[ContainerPort, ...]) -> Probe:
    data = as_map(value, where)
    check_fields(data, where, ("path", "port", "scheme", "httpHeaders", "host"))
    _host(data, where)
    port = _port(require(data, "port", where), where.key("port"), ports)
    path = "/"
    if data.get("path") is not None:
        path = as_str(data["path"], where.key("path"))
        # Kubernetes takes "healthz" as "/healthz" (the agent does the same).
        if not path or any(ch.isspace() or ord(ch) < 32 or ord(ch) == 127 for ch in path):
            raise where.key("path").error(
                f"must be a URL path without spaces or control characters, got {describe(path)}"
            )
    if data.get("scheme") is not None:
        scheme = as_str(data["scheme"], where.key("scheme"))
        if scheme == "HTTPS":
            raise where.key("scheme").error('HTTPS is not supported yet; use "HTTP"')
        if scheme != "HTTP":
            raise where.key("scheme").error(f'must be "HTTP", got {describe(scheme)}')
    headers = _headers(data.get("httpHeaders"), where.key("httpHeaders"))
    return Probe(kind=ProbeKind.HTTP_GET, port=port, path=path, http_headers=headers)


def _tcp_socket(value: Any, where: Where, ports: tuple[ContainerPort, ...]) -> Probe:
    data = as_map(value, where)
    check_fields(data, where, ("port", "host"))
    _host(data, where)
    return Probe(
        kind=ProbeKind.TCP_SOCKET,
        port=_port(require(data, "port", where), where.key("port"), ports),
    )


def _exec(value: Any, where: Where) -> Probe:
    data = as_map(value, where)
    check_fields(data, where, ("command",))
    at = where.key("command")
    command = tuple(as_str(c, at.index(i)) for i, c in enumerate(as_list(data.get("command"), at)))
    if not command:
        raise at.error("is required (the command to run in the container)")
    return Probe(kind=ProbeKind.EXEC, command=command)


def _handler(data: dict[str, Any], where: Where, ports: tuple[ContainerPort, ...]) -> Probe:
    present = [h for h in HANDLERS if data.get(h) is not None]
    if data.get("grpc") is not None:
        raise where.key("grpc").error("not supported yet; use httpGet, tcpSocket or exec")
    if not present:
        raise where.error("must set exactly one of httpGet, tcpSocket or exec")
    if len(present) > 1:
        raise where.error(
            f"must set exactly one of httpGet, tcpSocket or exec, got {' and '.join(present)}"
        )
    kind = present[0]
    if kind == "httpGet":
        return _http_get(data[kind], where.key(kind), ports)
    if kind == "tcpSocket":
        return _tcp_socket(data[kind], where.key(kind), ports)
    return _exec(data[kind], where.key(kind))


def _timing(data: dict[str, Any], where: Where, key: str, low: int, default: int) -> int:
    if data.get(key) is None:
        return default
    return as_int(data[key], where.key(key), low)


def parse_probe(
    value: Any, where: Where, *, liveness: bool, ports: tuple[ContainerPort, ...]
) -> Probe:
    """One readinessProbe or livenessProbe (`liveness` says which) of a container with `ports`."""
    data = as_map(value, where)
    check_fields(data, where, PROBE_SUPPORTED, PROBE_UNSUPPORTED, ("grpc",))
    probe = _handler(data, where, ports)
    success = _timing(data, where, "successThreshold", 1, 1)
    if liveness and success != 1:
        raise where.key("successThreshold").error(
            f"must be 1 for a liveness probe, got {describe(data['successThreshold'])}"
        )
    return Probe(
        kind=probe.kind,
        port=probe.port,
        path=probe.path,
        scheme=probe.scheme,
        http_headers=probe.http_headers,
        command=probe.command,
        initial_delay_seconds=_timing(data, where, "initialDelaySeconds", 0, 0),
        period_seconds=_timing(data, where, "periodSeconds", 1, 10),
        timeout_seconds=_timing(data, where, "timeoutSeconds", 1, 1),
        success_threshold=success,
        failure_threshold=_timing(data, where, "failureThreshold", 1, 3),
    )
