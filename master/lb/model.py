"""Plain data for the load balancer edge: what the master wants served and what HAProxy holds.

The master's endpoints controller turns Services and ready Pods into `LbService` values (one per
service port) and hands them to the driver. The driver keeps an `LbState`: the slot table of every
backend, i.e. which endpoint sits in which pre-allocated HAProxy server slot and in what admin
state. `plan_runtime(state, services)` compares the two and returns an `LbPlan`; after the driver
has carried the plan out, `plan.state` becomes the driver's new state. Everything here is
immutable so plans can be computed, compared and tested without touching a process.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

# ready: takes new traffic (health checks still guard it); drain: finishes what it has and takes
# nothing new; maint: takes nothing and is not health-checked.
SlotMode = Literal["ready", "drain", "maint"]
# tcp: layer 4, retries only failed connects; http: layer 7, also retries idempotent
# requests whose server closed without answering (a pod killed mid-request).
ProxyMode = Literal["tcp", "http"]

EMPTY_ADDRESS = "0.0.0.0"


@dataclass(frozen=True, slots=True)
class Endpoint:
    """One place a service port is served: a pod's published address and host port."""

    pod: str
    address: str
    port: int
    ready: bool
    # Leaving gracefully: existing connections finish, no new requests are sent.
    draining: bool = False

    @property
    def key(self) -> tuple[str, str, int]:
        """Identity of the endpoint for slot assignment: it keeps its slot while this exists."""
        return (self.pod, self.address, self.port)

    @property
    def mode(self) -> SlotMode:
        # Not ready wins over draining: a pod that fails readiness must not see new traffic
        # and must not be health-checked back to UP behind the master's back.
        if not self.ready:
            return "maint"
        return "drain" if self.draining else "ready"


@dataclass(frozen=True, slots=True)
class LbService:
    """One service port to balance: HAProxy listens on `listen_port` and spreads over endpoints."""

    name: str
    port_name: str
    listen_port: int
    endpoints: tuple[Endpoint, ...]
    mode: ProxyMode = "tcp"
    # Addresses to listen on; empty means LbSettings.listen_address.
    bind_addresses: tuple[str, ...] = ()
    # False for an Ingress backend (master/lb/ingress.py): reached through the ingress
    # frontends' routes, it has no frontend of its own (listen_port is 0).
    frontend: bool = True

    @property
    def key(self) -> tuple[str, str]:
        return (self.name, self.port_name)


@dataclass(frozen=True, slots=True)
class LbAddresses:
    """Where services are reachable: LoadBalancer services on `listen` (shown as
    `advertise`), every service on `internal` (its cluster IP)."""

    listen: str
    advertise: str = ""
    internal: str = ""
    port_offset: int = 0
    # With a pool (--lb-address-pool), each LoadBalancer Service has an address of its
    # own from it (master/lb/pool.py) and listens there only.
    pool: tuple[str, ...] = ()

    @property
    def external_ip(self) -> str:
        return self.advertise or self.listen

    @property
    def cluster_ip(self) -> str:
        return self.internal or self.external_ip

    @property
    def bind_internal(self) -> str:
        """The address ClusterIP services are bound to."""
        return self.internal or self.listen


@dataclass(frozen=True, slots=True)
class Unservable:
    """Why the load balancer leaves one Service out; `other` names the object in the way."""

    service: str
    reason: str  # CamelCase, as in events: PortConflict, InvalidPort, AddressPoolExhausted
    message: str
    other: str = ""


@dataclass(frozen=True, slots=True)
class LbSettings:
    """How HAProxy is configured; the defaults suit a LAN of a few hundred machines."""

    listen_address: str
    # Minimum server slots per backend; a backend holds the next power of two >= max(this,
    # endpoints) so adding endpoints rarely needs a reload.
    slots_per_backend: int = 16
    # Endpoints live on the same LAN: a connect that takes longer than this goes to a
    # dead machine (whose packets vanish), so give up early and retry elsewhere.
    connect_timeout_ms: int = 500
    client_timeout_ms: int = 60_000
    server_timeout_ms: int = 60_000
    check_interval_ms: int = 1000
    # How often a DOWN server is checked: a new endpoint enters DOWN and takes
    # traffic once a check shows its port accepts connections.
    down_check_interval_ms: int = 100
    check_fall: int = 2
    check_rise: int = 1
    retries: int = 3
    max_connections: int = 4096
    # HAProxy's nbthread; 0 leaves its default (one per CPU). The master passes
    # kernel.haproxy_tuning.haproxy_threads(cpus): one thread on a machine of two CPUs.
    threads: int = 0
    # After a reload the old worker keeps serving its established connections; long-lived TCP
    # sessions would otherwise keep old workers alive forever.
    hard_stop_after_ms: int = 300_000
    # Log every connection (option tcplog) to HAProxy's stderr; off by default, state changes
    # and alerts are always logged by HAProxy itself.
    log_connections: bool = False


@dataclass(frozen=True, slots=True)
class Slot:
    """One pre-allocated HAProxy server; empty slots hold 0.0.0.0:0 in maint."""

    pod: str = ""
    address: str = EMPTY_ADDRESS
    port: int = 0
    mode: SlotMode = "maint"

    @property
    def empty(self) -> bool:
        return self.pod == ""

    @property
    def key(self) -> tuple[str, str, int]:
        return (self.pod, self.address, self.port)


EMPTY_SLOT = Slot()


@dataclass(frozen=True, slots=True)
class BackendState:
    """The slot table of one service port, plus the port its frontend listens on."""

    service: str
    port_name: str
    listen_port: int
    slots: tuple[Slot, ...]
    mode: ProxyMode = "tcp"
    bind_addresses: tuple[str, ...] = ()
    frontend: bool = True

    @property
    def key(self) -> tuple[str, str]:
        return (self.service, self.port_name)


@dataclass(frozen=True, slots=True)
class Route:
    """One path of an Ingress as HAProxy matches it: `path` "" or "/" matches every path;
    Prefix matches path elements (/foo matches /foo and /foo/bar, not /foobar)."""

    path: str
    exact: bool
    # The Ingress backend's key (service, port name) in LbState, or None for a Service
    # that does not exist (answered 503).
    backend: tuple[str, str] | None
    ingress: str = ""


@dataclass(frozen=True, slots=True)
class HostRoutes:
    """The routes of one host, tried in order; `host` "" is any host, "*.x" a wildcard."""

    host: str
    routes: tuple[Route, ...]


@dataclass(frozen=True, slots=True)
class CertRef:
    """One TLS certificate HAProxy serves: a PEM file in the LB dir's certs/ (never in
    state.json), its digest (so a changed Secret reloads), and the SNI names it is for."""

    file: str
    digest: str
    hosts: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class IngressFrontend:
    """The ingress HTTP (and, with certificates, HTTPS) frontend: hosts in match order
    (exact, then wildcard, then any host), and the backend for requests nothing matches
    (None: 404)."""

    bind_address: str
    http_port: int
    https_port: int
    hosts: tuple[HostRoutes, ...] = ()
    default_backend: tuple[str, str] | None = None
    certs: tuple[CertRef, ...] = ()
    # Hosts (exact or "*.x") whose plain-HTTP requests are redirected to HTTPS: those
    # with a certificate served, unless an Ingress naming them says ssl-redirect "false".
    redirect_hosts: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class LbState:
    """What HAProxy currently holds, backends sorted by (service, port name)."""

    backends: tuple[BackendState, ...] = ()
    ingress: IngressFrontend | None = None

    def backend(self, service: str, port_name: str) -> BackendState | None:
        for backend in self.backends:
            if backend.key == (service, port_name):
                return backend
        return None


@dataclass(frozen=True, slots=True)
class LbPlan:
    """How to get HAProxy from one state to the next.

    Without a reload, `commands` are Runtime API commands to send in order. With a reload, the
    config rendered for `state` already carries every address and ready/maint state; `commands`
    then re-apply what a config cannot express (drain) once the new worker answers.
    """

    needs_reload: bool
    commands: tuple[str, ...]
    state: LbState
    reason: str
