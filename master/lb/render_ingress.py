"""Render the ingress frontends of haproxy.cfg (pure: an IngressFrontend in, text out).

One HTTP frontend (and an HTTPS one once any certificate is served) in mode http,
with `option forwardfor` (X-Forwarded-For: the client's address) and
X-Forwarded-Proto/-Port set to what the client used. Routing is a list of
`use_backend` lines, which HAProxy tries in order, so the order *is* the
precedence (decided in master/lb/ingress.py):

- hosts: exact names, then `*.` wildcards (exactly one more label, as
  Kubernetes defines them), then the rules without a host;
- within a host, its routes as given (longest path first, Exact before Prefix);
  once a request's host matched a named host, requests no path matches go to
  the default backend rather than to another host's rules (a host's rules are
  its own, as in ingress-nginx).

A Prefix path matches whole path elements: `/foo` is `path == /foo` or `path`
begins with `/foo/`. Hosts and paths were validated at apply time
(master/manifest/ingress.py) to hold no character HAProxy's config parser
treats specially. Requests nothing matches get 404 unless an Ingress declares
a default backend; a route to a Service that does not exist gets 503.

On the HTTP frontend, requests for a host with a certificate served (and no
ssl-redirect "false") are answered `308` to `https://<host>[:port]<path?query>`,
before any route (ingress-nginx's default; 308 keeps the method and body). On the
HTTPS frontend a client naming no host, or one no certificate is for, gets the
default certificate (certs/_default.pem, self-signed, made by the driver), never one
of the tenants' certificates -- which would tell any client their host names.
"""

from __future__ import annotations

import re

from master.lb.model import IngressFrontend, Route
from master.lb.slots import backend_name, format_address

HTTP_FRONTEND = "ingress:http"
HTTPS_FRONTEND = "ingress:https"
NOT_FOUND_BACKEND = "ingress:404"
MISSING_BACKEND = "ingress:503"
CERTS_DIR = "certs"
CERT_LIST = "certs.list"
# The certificate for clients that name no host or one nothing else is for (first in
# certs.list; "_" begins no Secret's file, master/lb/ingress.py cert_file); the driver
# makes it once, self-signed (master/lb/ingress_tls.py).
DEFAULT_CERT = "_default.pem"

# Bound lengths keep one hostile manifest from producing a giant config line.
_SAFE_HOST = re.compile(r"^(\*\.)?[a-z0-9]([a-z0-9.-]*[a-z0-9])?\Z")
_SAFE_PATH = re.compile(r"^/[A-Za-z0-9\-._~/%:@+,;=]*\Z")


def _backend(key: tuple[str, str] | None, missing: str) -> str:
    return backend_name(*key) if key is not None else missing


def _host_match(host: str) -> str:
    """The ACL expression matching requests for `host` (exact, or `*.` plus one label)."""
    if not _SAFE_HOST.match(host):
        raise ValueError(f"ingress host {host!r} is not a DNS name")
    fetch = "req.hdr(host),host_only,lower"
    if host.startswith("*."):
        suffix = re.escape(host[2:])
        return f"{fetch} -m reg ^[^.]+\\.{suffix}$"
    return f"{fetch} -m str {host}"


def _host_acl(index: int, host: str) -> str:
    return f"    acl host{index} {_host_match(host)}"


def _path_condition(route: Route, host: str) -> str:
    """The condition of one route: `host3 { path -m str /a } || host3 { path -m beg /a/ }`."""
    path = route.path.rstrip("/") if not route.exact else route.path
    if route.path and not _SAFE_PATH.match(route.path):
        raise ValueError(f"ingress path {route.path!r} holds characters HAProxy cannot take")
    if route.exact:
        terms = [f"{{ path -m str {route.path} }}"]
    elif not path:  # "/" or "": every path
        terms = []
    else:
        terms = [f"{{ path -m str {path} }}", f"{{ path -m beg {path}/ }}"]
    if not terms:
        return host or "TRUE"
    return " || ".join(f"{host} {t}".strip() for t in terms)


def _routes(frontend: IngressFrontend) -> list[str]:
    lines: list[str] = []
    acls: list[str] = []
    fallback = _backend(frontend.default_backend, NOT_FOUND_BACKEND)
    for index, group in enumerate(frontend.hosts):
        host = f"host{index}" if group.host else ""
        if group.host:
            acls.append(_host_acl(index, group.host))
        for route in group.routes:
            backend = _backend(route.backend, MISSING_BACKEND)
            lines.append(f"    use_backend {backend} if {_path_condition(route, host)}")
        if group.host:
            # This host's requests that none of its paths match stop here.
            lines.append(f"    use_backend {fallback} if {host}")
    return [*acls, *lines, f"    default_backend {fallback}"]


def _redirects(frontend: IngressFrontend) -> list[str]:
    """308 to HTTPS for the hosts that have it (only when an HTTPS frontend is served)."""
    if not (frontend.https_port and frontend.certs):
        return []
    port = "" if frontend.https_port == 443 else f":{frontend.https_port}"
    location = f"https://%[req.hdr(host),host_only]{port}%[pathq]"
    lines = []
    for host in frontend.redirect_hosts:
        condition = _host_match(host)
        lines.append(f"    http-request redirect location {location} code 308 if {{ {condition} }}")
    return lines


def _frontend(name: str, bind: str, proto: str, port: int, frontend: IngressFrontend) -> str:
    lines = [
        f"frontend {name}",
        f"    bind {bind}",
        "    mode http",
        # X-Forwarded-For: the client's address, appended to what a proxy before us set.
        "    option forwardfor",
        f"    http-request set-header X-Forwarded-Proto {proto}",
        f"    http-request set-header X-Forwarded-Port {port}",
        *(_redirects(frontend) if proto == "http" else []),
        *_routes(frontend),
    ]
    return "\n".join(lines) + "\n"


def render_ingress(frontend: IngressFrontend | None) -> str:
    """The ingress frontends and their fixed backends ("" when no Ingress is served)."""
    if frontend is None:
        return ""
    parts = []
    address = frontend.bind_address
    if frontend.http_port:
        bind = format_address(address, frontend.http_port)
        parts.append(_frontend(HTTP_FRONTEND, bind, "http", frontend.http_port, frontend))
    if frontend.https_port and frontend.certs:
        bind = (
            f"{format_address(address, frontend.https_port)} ssl crt-list {CERT_LIST}"
            " alpn h2,http/1.1"
        )
        parts.append(_frontend(HTTPS_FRONTEND, bind, "https", frontend.https_port, frontend))
    parts.append(
        f"backend {NOT_FOUND_BACKEND}\n    mode http\n"
        '    http-request return status 404 content-type text/plain string "no Ingress rule '
        'matches this host and path\\n"\n'
    )
    parts.append(
        f"backend {MISSING_BACKEND}\n    mode http\n"
        '    http-request return status 503 content-type text/plain string "the Service this '
        'Ingress route names does not exist\\n"\n'
    )
    return "\n".join(parts)


def render_cert_list(frontend: IngressFrontend | None) -> str:
    """certs.list: one certificate a line with the SNI names it serves; the first, the
    default certificate, is for clients that name no host or a host no certificate is for."""
    if frontend is None or not frontend.certs:
        return ""
    lines = [f"{CERTS_DIR}/{DEFAULT_CERT}"]
    for cert in frontend.certs:
        names = " ".join(cert.hosts)
        lines.append(f"{CERTS_DIR}/{cert.file} {names}".rstrip())
    return "\n".join(lines) + ("\n" if lines else "")
