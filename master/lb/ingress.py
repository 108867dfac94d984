"""Ingresses -> what the load balancer serves for them, and what is wrong with each (pure).

`plan_ingress` takes every Ingress, Service, Secret and Pod and returns an `IngressPlan`:

- the ingress frontend (master/lb/model.py `IngressFrontend`): hosts in match order and
  their routes, the default backend, the certificates (rendered by render_ingress.py);
- one HTTP backend per Service port an Ingress routes to (`LbService` with no frontend
  of its own, port name `ingress:<port>`), its endpoints found exactly as a Service's
  own (master/lb/endpoints.py), so they share the slot/Runtime API machinery: scaling
  and rollouts change servers without a reload; only changed routes reload;
- the certificate files to write (PEM bytes by file name);
- the problems of each Ingress, so failures stay with their object: a backend Service
  or port that does not exist (its routes answer 503), a Secret missing or unusable
  (its hosts get no HTTPS), a route or default backend another Ingress already
  declared (the oldest Ingress keeps it). Nothing one Ingress says stops another
  Ingress or any Service from being served.

Only Ingresses of pinnace's classes are served: the class an Ingress names
(`spec.ingressClassName`, else the legacy annotation `kubernetes.io/ingress.class`) is
pinnace's when a stored IngressClass of that name has pinnace's controller
(`pinnace.dev/haproxy`) or, none stored by that name, when it is the built-in "pinnace".
An Ingress naming no class gets the default class: a stored IngressClass annotated
`ingressclass.kubernetes.io/is-default-class: "true"` (the oldest, if several), else the
built-in one. The others belong to some other controller and are reported as ignored,
with the reason.

A host with a certificate served is redirected from HTTP to HTTPS (308, as ingress-nginx
does by default), unless an Ingress naming it in its rules or tls says
`nginx.ingress.kubernetes.io/ssl-redirect: "false"`.

Matching follows Kubernetes: a host is exact or `*.` plus one label; Prefix matches
path elements with trailing slashes ignored; the longest path wins and Exact beats
Prefix at equal length; ImplementationSpecific is Prefix here.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace

from master.lb.conflicts import Listener, Reserved, StatusEvent
from master.lb.endpoints import pod_endpoint
from master.lb.ingress_tls import CertificateError, certificate_pem, digest
from master.lb.model import CertRef, Endpoint, HostRoutes, IngressFrontend, LbService, Route
from master.lb.slots import ingress_port_name
from master.model import (
    DEFAULT_NAMESPACE,
    INGRESS_CLASS,
    INGRESS_CLASS_ANNOTATION,
    INGRESS_CONTROLLER,
    SSL_REDIRECT_ANNOTATION,
    Ingress,
    IngressBackend,
    IngressClass,
    Pod,
    Secret,
    Service,
    ServicePort,
    lb_name,
    ref,
    selector_matches,
)


@dataclass(frozen=True, slots=True)
class IngressPorts:
    """Where the ingress frontends listen (0: that port is off) and the address shown."""

    bind_address: str
    http_port: int
    https_port: int
    advertise: str = ""

    @property
    def shown_address(self) -> str:
        return self.advertise or self.bind_address


@dataclass(frozen=True, slots=True)
class Problem:
    reason: str  # CamelCase, as in events
    message: str


@dataclass(frozen=True, slots=True)
class IngressPlan:
    frontend: IngressFrontend | None
    backends: tuple[LbService, ...]
    pems: Mapping[str, bytes]
    problems: Mapping[str, tuple[Problem, ...]]
    # Ingresses of pinnace's class (by `ingress_ref`), with the ports each is served on.
    served: Mapping[str, tuple[int, ...]] = field(default_factory=dict)


# Where plan_services reports an ingress port an older Service holds (":" never appears in
# a Service's name); each port is held or lost on its own.
INGRESS_HTTP_HOLDER = "ingress:http"
INGRESS_HTTPS_HOLDER = "ingress:https"


def ingress_reserved(
    ports: IngressPorts | None,
    ingresses: Iterable[Ingress],
    classes: Sequence[IngressClass] = (),
) -> list[Reserved]:
    """The ingress ports' listeners, as old as the oldest Ingress served; none while no
    Ingress of pinnace's class exists (then nothing is bound either)."""
    ours = [i.meta.created_at for i in ingresses if is_ours(i, classes)]
    if ports is None or not ours:
        return []
    found = []
    for holder, port, what, flag in (
        (INGRESS_HTTP_HOLDER, ports.http_port, "HTTP", "--ingress-http-port"),
        (INGRESS_HTTPS_HOLDER, ports.https_port, "HTTPS", "--ingress-https-port"),
    ):
        if port:
            found.append(
                Reserved(
                    holder,
                    f"the Ingress {what} port",
                    (Listener(ports.bind_address, port),),
                    min(ours),
                    remedy=f"start the master with another {flag}",
                )
            )
    return found


def ingress_ref(ing: Ingress) -> str:
    """How plans name an Ingress: its bare name in "default", "<namespace>/<name>" elsewhere."""
    return ref(ing.meta.namespace, ing.meta.name)


def cert_file(namespace: str, secret: str) -> str:
    """The PEM file of a Secret in the LB dir's certs/: "_" appears in no DNS name, so
    "<namespace>_<secret>" never meets a Secret of "default" (kept bare)."""
    return f"{secret}.pem" if namespace == DEFAULT_NAMESPACE else f"{namespace}_{secret}.pem"


def class_of(ing: Ingress) -> str:
    """The IngressClass an Ingress asks for; "" is the default class (pinnace)."""
    return ing.class_name or ing.meta.annotations.get(INGRESS_CLASS_ANNOTATION, "")


def foreign_reason(ing: Ingress, classes: Sequence[IngressClass] = ()) -> str:
    """Why `ing` is left to another controller ("" when pinnace serves it)."""
    name = class_of(ing)
    if not name:
        defaults = sorted(
            (c for c in classes if c.is_default), key=lambda c: (c.meta.created_at, c.meta.name)
        )
        if not defaults or defaults[0].controller == INGRESS_CONTROLLER:
            return ""
        return (
            f'it names no IngressClass and the default one, "{defaults[0].meta.name}", is '
            f"controller {defaults[0].controller}'s; this Ingress is left to that controller"
        )
    stored = next((c for c in classes if c.meta.name == name), None)
    if stored is not None:
        if stored.controller == INGRESS_CONTROLLER:
            return ""
        return (
            f"IngressClass \"{name}\" is controller {stored.controller}'s, not pinnace's "
            f"({INGRESS_CONTROLLER}); this Ingress is left to that controller"
        )
    if name == INGRESS_CLASS:
        return ""
    return (
        f'IngressClass "{name}" is not pinnace\'s ("{INGRESS_CLASS}", or one with controller '
        f"{INGRESS_CONTROLLER}); this Ingress is left to that class's controller"
    )


def is_ours(ing: Ingress, classes: Sequence[IngressClass] = ()) -> bool:
    return not foreign_reason(ing, classes)


def _age_order(ingresses: Iterable[Ingress]) -> list[Ingress]:
    return sorted(ingresses, key=lambda i: (i.meta.created_at, i.meta.name))


def _find_port(svc: Service, backend: IngressBackend) -> ServicePort | None:
    for port in svc.ports:
        if backend.port_number and port.port == backend.port_number:
            return port
        if backend.port_name and port.name == backend.port_name:
            return port
    return None


class _Builder:
    """Collects routes, backends, certificates and problems, oldest Ingress first."""

    def __init__(self, services: Sequence[Service], secrets: Iterable[Secret]) -> None:
        # An Ingress names Services and Secrets of its own namespace.
        self.services = {(s.meta.namespace, s.meta.name): s for s in services}
        self.secrets = {(s.meta.namespace, s.meta.name): s for s in secrets}
        self.problems: dict[str, list[Problem]] = {}
        self.needed: dict[tuple[str, str], tuple[Service, ServicePort]] = {}
        self.hosts: dict[str, list[Route]] = {}
        self.declared: dict[tuple[str, str, bool], str] = {}
        self.default: tuple[str, str] | None = None
        self.default_owner = ""
        self.cert_hosts: dict[str, set[str] | None] = {}
        self.pems: dict[str, bytes] = {}
        self.with_tls: set[str] = set()
        # Hosts with a certificate served, and hosts an Ingress keeps on plain HTTP.
        self.secure_hosts: set[str] = set()
        self.plain_hosts: set[str] = set()

    def add_redirect_choice(self, ing: Ingress) -> None:
        if ing.meta.annotations.get(SSL_REDIRECT_ANNOTATION, "").lower() == "false":
            self.plain_hosts.update(r.host for r in ing.rules if r.host)
            self.plain_hosts.update(h for tls in ing.tls for h in tls.hosts)

    def problem(self, ing: Ingress, reason: str, message: str) -> None:
        self.problems.setdefault(ingress_ref(ing), []).append(Problem(reason, message))

    def resolve(self, ing: Ingress, backend: IngressBackend, at: str) -> tuple[str, str] | None:
        svc = self.services.get((ing.meta.namespace, backend.service))
        if svc is None:
            self.problem(
                ing, "BackendNotFound", f"{at}: service/{backend.service} does not exist (503)"
            )
            return None
        port = _find_port(svc, backend)
        if port is None:
            self.problem(
                ing,
                "BackendNotFound",
                f"{at}: service/{backend.service} has no port {backend.port_text} (503)",
            )
            return None
        key = (lb_name(svc), ingress_port_name(port.port))
        self.needed[key] = (svc, port)
        return key

    def add_rules(self, ing: Ingress) -> None:
        for i, rule in enumerate(ing.rules):
            routes = self.hosts.setdefault(rule.host, [])
            for j, path in enumerate(rule.paths):
                at = f"spec.rules[{i}].http.paths[{j}]"
                exact = path.path_type == "Exact"
                normal = path.path if exact else (path.path.rstrip("/") or "/")
                key = (rule.host, normal, exact)
                owner = self.declared.get(key)
                if owner is not None:
                    if owner != ingress_ref(ing):
                        shown = f"{rule.host or '*'}{normal} ({path.path_type})"
                        self.problem(
                            ing,
                            "RouteConflict",
                            f"{at}: {shown} is already routed by ingress/{owner}, which keeps it",
                        )
                    continue
                self.declared[key] = ingress_ref(ing)
                target = self.resolve(ing, path.backend, f"{at}.backend")
                routes.append(Route(normal, exact, target, ingress_ref(ing)))

    def add_default(self, ing: Ingress) -> None:
        if ing.default_backend is None:
            return
        if self.default_owner:
            self.problem(
                ing,
                "DefaultBackendConflict",
                f"spec.defaultBackend: ingress/{self.default_owner} already sets the default "
                "backend, which it keeps",
            )
            return
        self.default_owner = ingress_ref(ing)
        self.default = self.resolve(ing, ing.default_backend, "spec.defaultBackend")

    def add_tls(self, ing: Ingress) -> None:
        for k, tls in enumerate(ing.tls):
            at = f"spec.tls[{k}].secretName"
            secret = self.secrets.get((ing.meta.namespace, tls.secret_name))
            if secret is None:
                self.problem(
                    ing,
                    "SecretNotFound",
                    f"{at}: secret/{tls.secret_name} does not exist; its hosts get no HTTPS",
                )
                continue
            file = cert_file(ing.meta.namespace, tls.secret_name)
            if file not in self.pems:
                try:
                    self.pems[file] = certificate_pem(secret)
                except CertificateError as e:
                    self.problem(
                        ing,
                        "InvalidCertificate",
                        f"{at}: secret/{tls.secret_name} {e}; its hosts get no HTTPS",
                    )
                    continue
            current = self.cert_hosts.get(file, set())
            if current is None or not tls.hosts:
                # No hosts: the certificate serves the names it carries itself.
                self.cert_hosts[file] = None
            else:
                self.cert_hosts[file] = current | set(tls.hosts)
            self.with_tls.add(ingress_ref(ing))
            self.secure_hosts.update(tls.hosts)

    def certs(self) -> tuple[CertRef, ...]:
        return tuple(
            CertRef(file, digest(self.pems[file]), tuple(sorted(hosts or ())))
            for file, hosts in self.cert_hosts.items()
        )


def _host_order(host: str) -> tuple[int, str]:
    if not host:
        return (2, "")
    return (1, host) if host.startswith("*.") else (0, host)


def _route_order(route: Route) -> tuple[int, bool]:
    # Longest path first; at equal length Exact before Prefix.
    return (-len(route.path), not route.exact)


# (Service, its port) -> an Ingress backend's endpoints there.
BackendEndpoints = Callable[[Service, ServicePort], tuple[Endpoint, ...]]


def backend_endpoints(
    svc: Service,
    port: ServicePort,
    pods: Sequence[Pod],
    ready_nodes: Mapping[str, bool],
    pod_ips: bool = False,
) -> tuple[Endpoint, ...]:
    """An Ingress backend's endpoints from every pod: each pod of the Service's that has
    published the port, in name order (kept by each change: master/lb/endpoint_index.py);
    `pod_ips` as master/lb/endpoints.py `pod_endpoint`."""
    endpoints = []
    members = [
        p
        for p in pods
        if p.meta.namespace == svc.meta.namespace and selector_matches(svc.selector, p.meta.labels)
    ]
    for pod in sorted(members, key=lambda p: p.meta.name):
        ep = pod_endpoint(pod, port.target_port, ready_nodes.get(pod.node_name, False), pod_ips)
        if ep is not None:
            endpoints.append(ep)
    return tuple(endpoints)


def _backend(
    key: tuple[str, str], svc: Service, port: ServicePort, endpoints: BackendEndpoints
) -> LbService:
    return LbService(
        name=key[0],
        port_name=key[1],
        listen_port=0,
        endpoints=endpoints(svc, port),
        mode="http",
        frontend=False,
    )


def plan_ingress(
    ingresses: Iterable[Ingress],
    services: Sequence[Service],
    secrets: Iterable[Secret],
    pods: Sequence[Pod],
    ready_nodes: Mapping[str, bool],
    ports: IngressPorts,
    blocked: Sequence[Problem] = (),
    classes: Sequence[IngressClass] = (),
    endpoints: BackendEndpoints | None = None,
) -> IngressPlan:
    """What to serve for `ingresses` on `ports`; the caller has set a port it cannot serve
    to 0 (an older Service holds it, HAProxy refused the routes), and `blocked` says why:
    every Ingress served carries those problems too. A backend's endpoints come from
    `endpoints` when given (kept by each change), else from `pods` and `ready_nodes`."""
    everyone = _age_order(ingresses)
    ours = [i for i in everyone if is_ours(i, classes)]
    problems: dict[str, tuple[Problem, ...]] = {}
    for ing in everyone:
        if reason := foreign_reason(ing, classes):
            problems[ingress_ref(ing)] = (Problem("IgnoredIngressClass", reason),)
    if ours and blocked:
        problems.update({ingress_ref(i): tuple(blocked) for i in ours})
    if not ours or not (ports.http_port or ports.https_port):
        return IngressPlan(None, (), {}, problems)
    build = _Builder(services, secrets)
    for ing in ours:
        build.add_rules(ing)
        build.add_default(ing)
        build.add_tls(ing)
        build.add_redirect_choice(ing)
    hosts = tuple(
        HostRoutes(host, tuple(sorted(routes, key=_route_order)))
        for host, routes in sorted(build.hosts.items(), key=lambda kv: _host_order(kv[0]))
    )
    certs = build.certs() if ports.https_port else ()
    frontend = IngressFrontend(
        bind_address=ports.bind_address,
        http_port=ports.http_port,
        https_port=ports.https_port,
        hosts=hosts,
        default_backend=build.default,
        certs=certs,
        redirect_hosts=tuple(sorted(build.secure_hosts - build.plain_hosts)) if certs else (),
    )
    if endpoints is None:

        def endpoints(svc: Service, port: ServicePort) -> tuple[Endpoint, ...]:
            return backend_endpoints(svc, port, pods, ready_nodes)

    backends = tuple(
        _backend(key, svc, port, endpoints) for key, (svc, port) in sorted(build.needed.items())
    )
    for name, found in build.problems.items():
        problems[name] = (*problems.get(name, ()), *found)
    served = {}
    for ing in ours:
        shown = [ports.http_port] if ports.http_port else []
        if certs and ingress_ref(ing) in build.with_tls:
            shown.append(ports.https_port)
        if shown:
            served[ingress_ref(ing)] = tuple(shown)
    pems = {c.file: build.pems[c.file] for c in certs}
    return IngressPlan(frontend, backends, pems, problems, served)


def ingress_status(
    ing: Ingress, problems: Sequence[Problem], address: str, ports: tuple[int, ...]
) -> tuple[Ingress, StatusEvent | None]:
    """`ing` with the status the load balancer gives it, and the event the change deserves.

    Served (address non-empty), it shows the address and ports; its problems (a missing
    Service or Secret) are one Warning event each time they change, and kept on the
    object until they are gone."""
    reason = problems[0].reason if problems else ""
    message = "; ".join(p.message for p in problems)
    new = ing
    if (ing.address, ing.ports, ing.lb_reason, ing.lb_message) != (
        address,
        ports,
        reason,
        message,
    ):
        new = replace(ing, address=address, ports=ports, lb_reason=reason, lb_message=message)
    event = None
    if (reason, message) != (ing.lb_reason, ing.lb_message):
        if problems:
            event = StatusEvent("Warning", reason, message)
        elif address:
            event = StatusEvent("Normal", "IngressServing", "every route and certificate is served")
    return new, event
