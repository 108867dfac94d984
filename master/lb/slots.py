"""Slot assignment and HAProxy naming: the pure core shared by rendering and planning.

Each backend owns a fixed number of HAProxy server slots (`s0`, `s1`, ...). Endpoints are placed
into slots so that the Runtime API can move traffic without a reload: an endpoint keeps its slot
for as long as it exists, new endpoints take slots that were empty before (lowest index first),
and only then slots vacated in the same step. A backend grows (to the next power of two) only when
its endpoints no longer fit, and never shrinks while it lives, because both need a reload.
`assign_slots(previous, services, min_slots)` is the single place that decides this; `render`
and `plan` both call it, so a config rendered for a reload matches the plan exactly.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Sequence

from master.lb.model import (
    EMPTY_SLOT,
    BackendState,
    Endpoint,
    IngressFrontend,
    LbService,
    LbState,
    Slot,
)

# HAProxy accepts letters, digits and "-_.:" in proxy names; service and port names are DNS
# labels, so "." can separate them without ambiguity.
_NAME_RE = re.compile(r"^[a-z0-9]([a-z0-9-]*[a-z0-9])?\Z")


def backend_name(service: str, port_name: str) -> str:
    """HAProxy backend name for one service port."""
    return "be_" + _proxy_suffix(service, port_name)


def frontend_name(service: str, port_name: str) -> str:
    """HAProxy frontend name for one service port."""
    return "fe_" + _proxy_suffix(service, port_name)


def server_name(index: int) -> str:
    return f"s{index}"


def ingress_port_name(port: int) -> str:
    """The port name of the Ingress backend of a Service port: ":" never appears in a
    Service's own port names, so its backend name cannot clash with theirs."""
    return f"{INGRESS_PORT_PREFIX}{port}"


INGRESS_PORT_PREFIX = "ingress:"


def _proxy_suffix(service: str, port_name: str) -> str:
    """`service` is master.model.lb_name: "svc" in default, "ns/svc" elsewhere, which HAProxy
    names "ns_svc" ("_" is in no DNS label: "team-a_web" can never be another Service's
    name or port, where "team-a.web" could be service team-a's port web)."""
    namespace, _, name = service.rpartition("/")
    for part in (namespace, name) if namespace else (name,):
        if not _NAME_RE.match(part):
            raise ValueError(f"service name {service!r} is not a DNS label")
    base = f"{namespace}_{name}" if namespace else name
    ingress_port = port_name.removeprefix(INGRESS_PORT_PREFIX)
    if port_name.startswith(INGRESS_PORT_PREFIX) and ingress_port.isdigit():
        return f"{base}.{port_name}"
    if port_name and not _NAME_RE.match(port_name):
        raise ValueError(f"port name {port_name!r} of service {service!r} is not a DNS label")
    return f"{base}.{port_name}" if port_name else base


def format_address(address: str, port: int) -> str:
    """`address:port` as HAProxy parses it (IPv6 in brackets)."""
    return f"[{address}]:{port}" if ":" in address else f"{address}:{port}"


def slot_count(endpoints: int, min_slots: int) -> int:
    """The next power of two >= max(min_slots, endpoints)."""
    if min_slots < 1:
        raise ValueError(f"slots_per_backend must be >= 1, got {min_slots}")
    need = max(min_slots, endpoints)
    count = 1
    while count < need:
        count *= 2
    return count


def _check_endpoint(service: LbService, endpoint: Endpoint) -> None:
    # The Runtime API only takes IP addresses, and init-addr none means HAProxy would start a
    # server with a hostname address unresolved, so a hostname here is a caller bug.
    try:
        ipaddress.ip_address(endpoint.address)
    except ValueError:
        raise ValueError(
            f"service {service.name!r}: endpoint {endpoint.pod!r} address "
            f"{endpoint.address!r} is not an IP address"
        ) from None
    if not 1 <= endpoint.port <= 65535:
        raise ValueError(
            f"service {service.name!r}: endpoint {endpoint.pod!r} port {endpoint.port} "
            "is not in 1..65535"
        )


def _unique_endpoints(service: LbService) -> list[Endpoint]:
    """Endpoints in the caller's order with duplicates (same pod, address, port) dropped."""
    seen: set[tuple[str, str, int]] = set()
    unique: list[Endpoint] = []
    for endpoint in service.endpoints:
        _check_endpoint(service, endpoint)
        if endpoint.key not in seen:
            seen.add(endpoint.key)
            unique.append(endpoint)
    return unique


def assign_backend(
    previous: BackendState | None, service: LbService, min_slots: int
) -> BackendState:
    """Place `service`'s endpoints into slots, keeping every surviving endpoint where it was."""
    endpoints = _unique_endpoints(service)
    old_slots = previous.slots if previous is not None else ()
    size = max(slot_count(len(endpoints), min_slots), len(old_slots))
    slots: list[Slot] = [EMPTY_SLOT] * size

    where = {slot.key: i for i, slot in enumerate(old_slots) if not slot.empty}
    placed: set[int] = set()
    newcomers: list[Endpoint] = []
    for endpoint in endpoints:
        index = where.get(endpoint.key)
        if index is None:
            newcomers.append(endpoint)
            continue
        slots[index] = _slot_for(endpoint)
        placed.add(index)

    # Slots freed in this very step may still carry draining connections and fresh stats;
    # prefer slots that were already empty so a newcomer does not inherit them.
    vacated = [i for i in where.values() if i not in placed]
    was_empty = [i for i in range(size) if i not in placed and i not in vacated]
    free = was_empty + sorted(vacated)
    for endpoint, index in zip(sorted(newcomers, key=lambda e: e.key), free, strict=False):
        slots[index] = _slot_for(endpoint)
    return BackendState(
        service=service.name,
        port_name=service.port_name,
        listen_port=service.listen_port,
        slots=tuple(slots),
        mode=service.mode,
        bind_addresses=service.bind_addresses,
        frontend=service.frontend,
    )


def _slot_for(endpoint: Endpoint) -> Slot:
    return Slot(pod=endpoint.pod, address=endpoint.address, port=endpoint.port, mode=endpoint.mode)


def _overlap(a: str, b: str) -> bool:
    """Two bind addresses on one port clash: the same, or either a wildcard."""
    return a == b or a in _WILDCARDS or b in _WILDCARDS


_WILDCARDS = frozenset({"0.0.0.0", "::"})


def assign_slots(
    previous: LbState,
    services: Sequence[LbService],
    min_slots: int,
    ingress: IngressFrontend | None = None,
) -> LbState:
    """The slot table for `services`, as stable as possible with respect to `previous`;
    `ingress` is the ingress frontend to serve beside them (routes need no slots)."""
    by_key: dict[tuple[str, str], LbService] = {}
    # (address, port) -> service port; "" is the default listen address.
    listeners: dict[tuple[str, int], tuple[str, str]] = {}
    for service in services:
        backend_name(service.name, service.port_name)  # validates the names
        if service.key in by_key:
            raise ValueError(f"service {service.name!r} port {service.port_name!r} given twice")
        if not service.frontend:
            by_key[service.key] = service
            continue
        if not 1 <= service.listen_port <= 65535:
            raise ValueError(f"service {service.name!r}: listen port {service.listen_port}")
        for address in service.bind_addresses or ("",):
            for (other_address, port), other in listeners.items():
                if port == service.listen_port and _overlap(address, other_address):
                    raise ValueError(f"listen port {port} wanted by both {other} and {service.key}")
        by_key[service.key] = service
        for address in service.bind_addresses or ("",):
            listeners[(address, service.listen_port)] = service.key
    if ingress is not None:
        for port in (ingress.http_port, ingress.https_port if ingress.certs else 0):
            for (other_address, other_port), other in listeners.items():
                if port and port == other_port and _overlap(ingress.bind_address, other_address):
                    raise ValueError(f"listen port {port} wanted by both {other} and the ingress")
    backends = tuple(
        assign_backend(previous.backend(*key), by_key[key], min_slots) for key in sorted(by_key)
    )
    return LbState(backends=backends, ingress=ingress)
