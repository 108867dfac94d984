"""An Ingress manifest (networking.k8s.io/v1) -> the model's Ingress.

An Ingress routes HTTP by host and path onto Service ports; the master's load
balancer serves it (master/lb/ingress.py). Validation follows Kubernetes':
either `defaultBackend` or `rules`; hosts are DNS names, optionally with one
leading `*.` label, never IP addresses; Prefix and Exact paths are absolute;
every backend names a Service (a DNS-1035 label) and a port by number or by
name, not both. Paths are further limited to the characters URL paths
normally use (letters, digits and `-._~/%:@+,;=`), as ingress-nginx's strict
path validation does, because they end up in HAProxy's configuration.
`resource` backends are refused: pinnace can only route to Services. Annotations other
controllers act on (ingress-nginx's rewrite-target, cert-manager's ...) are warned about,
except ingress-nginx's ssl-redirect, which pinnace honours.

An IngressClass (networking.k8s.io/v1, cluster-scoped) is its controller's name; its
`parameters` (a controller's own settings) are warned about and ignored.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import replace
from typing import Any

from master.manifest.errors import Where, describe
from master.manifest.fields import as_int, as_list, as_map, as_str, check_fields, one_of, require
from master.manifest.meta import parse_object_meta
from master.manifest.names import (
    check_dns1035_label,
    check_dns1123_subdomain,
    check_port_name,
)
from master.model import (
    DEFAULT_NAMESPACE,
    INGRESS_PATH_TYPES,
    SSL_REDIRECT_ANNOTATION,
    Ingress,
    IngressBackend,
    IngressClass,
    IngressPath,
    IngressRule,
    IngressTLS,
)

SPEC_SUPPORTED = ("ingressClassName", "defaultBackend", "rules", "tls")
BACKEND_FIELDS = ("service", "resource")
SERVICE_BACKEND_FIELDS = ("name", "port")
PORT_FIELDS = ("number", "name")
RULE_FIELDS = ("host", "http")
HTTP_FIELDS = ("paths",)
PATH_FIELDS = ("path", "pathType", "backend")
TLS_FIELDS = ("hosts", "secretName")

# Annotations other ingress controllers act on (rewrites, redirects, auth, certificates):
# pinnace routes by the spec alone, so an Ingress counting on one is told at apply time.
CONTROLLER_ANNOTATIONS = (
    "nginx.ingress.kubernetes.io/",
    "ingress.kubernetes.io/",
    "traefik.ingress.kubernetes.io/",
    "haproxy.org/",
    "haproxy-ingress.github.io/",
    "alb.ingress.kubernetes.io/",
    "cert-manager.io/",
    "kubernetes.io/tls-acme",
)

_PATH = re.compile(r"^/[A-Za-z0-9\-._~/%:@+,;=]*\Z")
_PATH_CHARS = "letters, digits and -._~/%:@+,;="


def parse_ingress(data: dict[str, Any], where: Where) -> Ingress:
    """`data` is one document already known to be kind Ingress, networking.k8s.io/v1."""
    check_fields(data, where, ("apiVersion", "kind", "metadata", "spec"), (), ("status",))
    meta = parse_object_meta(data.get("metadata"), where.key("metadata"), check_dns1123_subdomain)
    for key in sorted(meta.annotations):
        if key.startswith(CONTROLLER_ANNOTATIONS) and key != SSL_REDIRECT_ANNOTATION:
            where.key("metadata").key("annotations").key(key).warn(
                "another ingress controller's annotation, not acted on by pinnace"
            )
    at = where.key("spec")
    spec = as_map(require(data, "spec", where), at)
    check_fields(spec, at, SPEC_SUPPORTED)
    class_name = ""
    if spec.get("ingressClassName") is not None:
        class_name = as_str(spec["ingressClassName"], at.key("ingressClassName"))
        check_dns1123_subdomain(class_name, at.key("ingressClassName"))
    default = None
    if spec.get("defaultBackend") is not None:
        default = parse_backend(spec["defaultBackend"], at.key("defaultBackend"))
    rules = tuple(
        _parse_rule(item, at.key("rules").index(i))
        for i, item in enumerate(as_list(spec.get("rules"), at.key("rules")))
    )
    if default is None and not rules:
        raise at.error("either defaultBackend or rules must be given")
    tls = tuple(
        t
        for i, item in enumerate(as_list(spec.get("tls"), at.key("tls")))
        if (t := _parse_tls(item, at.key("tls").index(i))) is not None
    )
    return Ingress(meta=meta, class_name=class_name, default_backend=default, rules=rules, tls=tls)


def parse_backend(value: Any, where: Where) -> IngressBackend:
    data = as_map(value, where)
    check_fields(data, where, BACKEND_FIELDS)
    if data.get("resource") is not None:
        raise where.key("resource").error(
            "resource backends are not supported; name a service (service.name, service.port)"
        )
    at = where.key("service")
    service = as_map(require(data, "service", where), at)
    check_fields(service, at, SERVICE_BACKEND_FIELDS)
    name = as_str(require(service, "name", at), at.key("name"))
    check_dns1035_label(name, at.key("name"))
    port_at = at.key("port")
    port = as_map(require(service, "port", at), port_at)
    check_fields(port, port_at, PORT_FIELDS)
    number = port.get("number")
    port_name = port.get("name")
    if (number is None) == (port_name is None):
        raise port_at.error("give exactly one of number and name (the Service port)")
    if number is not None:
        return IngressBackend(name, port_number=as_int(number, port_at.key("number"), 1, 65535))
    text = as_str(port_name, port_at.key("name"))
    check_port_name(text, port_at.key("name"))
    return IngressBackend(name, port_name=text)


def check_host(host: str, where: Where) -> None:
    """A DNS name, optionally `*.` then a DNS name (one wildcard label); no IP address."""
    try:
        ipaddress.ip_address(host)
    except ValueError:
        pass
    else:
        raise where.error(f"must be a DNS name, not an IP address, got {describe(host)}")
    name = host[2:] if host.startswith("*.") else host
    if "*" in name:
        raise where.error(
            f'a wildcard must be the whole first label ("*.example.com"), got {describe(host)}'
        )
    check_dns1123_subdomain(name, where)


def _parse_rule(value: Any, where: Where) -> IngressRule:
    data = as_map(value, where)
    check_fields(data, where, RULE_FIELDS)
    host = ""
    if data.get("host") is not None:
        host = as_str(data["host"], where.key("host"))
        if host:
            check_host(host, where.key("host"))
    paths: tuple[IngressPath, ...] = ()
    if data.get("http") is not None:
        at = where.key("http")
        http = as_map(data["http"], at)
        check_fields(http, at, HTTP_FIELDS)
        items = as_list(require(http, "paths", at), at.key("paths"))
        if not items:
            raise at.key("paths").error("must list at least one path")
        paths = tuple(_parse_path(p, at.key("paths").index(i)) for i, p in enumerate(items))
    return IngressRule(host=host, paths=paths)


def _parse_path(value: Any, where: Where) -> IngressPath:
    data = as_map(value, where)
    check_fields(data, where, PATH_FIELDS)
    path_type = one_of(require(data, "pathType", where), where.key("pathType"), INGRESS_PATH_TYPES)
    path = ""
    if data.get("path") is not None:
        path = as_str(data["path"], where.key("path"))
    if path or path_type != "ImplementationSpecific":
        if not path.startswith("/"):
            raise where.key("path").error(
                f'must be an absolute path (starting with "/") for pathType {path_type}, '
                f"got {describe(path)}"
            )
        if not _PATH.match(path) or "//" in path:
            raise where.key("path").error(
                f"may only hold {_PATH_CHARS} (no empty segment), got {describe(path)}"
            )
    backend = parse_backend(require(data, "backend", where), where.key("backend"))
    return IngressPath(path=path, path_type=path_type, backend=backend)


def _parse_tls(value: Any, where: Where) -> IngressTLS | None:
    data = as_map(value, where)
    check_fields(data, where, TLS_FIELDS)
    hosts = []
    for i, item in enumerate(as_list(data.get("hosts"), where.key("hosts"))):
        host = as_str(item, where.key("hosts").index(i))
        check_host(host, where.key("hosts").index(i))
        hosts.append(host)
    secret = ""
    if data.get("secretName") is not None:
        secret = as_str(data["secretName"], where.key("secretName"))
    if not secret:
        where.key("secretName").warn(
            "missing: pinnace has no default certificate, so these hosts get no HTTPS"
        )
        return None
    check_dns1123_subdomain(secret, where.key("secretName"))
    return IngressTLS(hosts=tuple(hosts), secret_name=secret)


def parse_ingress_class(data: dict[str, Any], where: Where) -> IngressClass:
    """`data` is one document already known to be kind IngressClass, networking.k8s.io/v1."""
    check_fields(data, where, ("apiVersion", "kind", "metadata", "spec"), (), ("status",))
    meta = parse_object_meta(data.get("metadata"), where.key("metadata"), check_dns1123_subdomain)
    at = where.key("spec")
    spec = as_map(require(data, "spec", where), at)
    check_fields(spec, at, ("controller",), ("parameters",))
    controller = as_str(require(spec, "controller", at), at.key("controller"))
    if not controller or len(controller) > 250:
        raise at.key("controller").error(
            "must name the controller (a domain-prefixed path such as pinnace.dev/haproxy, "
            "at most 250 characters)"
        )
    return IngressClass(replace(meta, namespace=DEFAULT_NAMESPACE), controller)
