"""Which Services the load balancer cannot serve, and why (pure).

One HAProxy serves every Service, so one Service that cannot be served (its
port already taken on its address, a listen port out of range) must not stop
the others from being programmed. `find_unservable(services, addresses)` walks
the Services oldest first and gives each its listeners (address, port); a
Service whose listener overlaps one already taken is unservable and names the
Service holding it. The oldest Service keeps its port: applying a new Service
never takes traffic away from one that already serves.

`admission_errors(new, existing, addresses)` asks the same question at apply
time, so the usual case (a second Service on port 80 of the same address) is
refused with one sentence before anything is stored; `find_unservable` covers
what apply cannot know (data written by an older master, changed LB flags).

The ingress frontends' listeners (--ingress-http-port, --ingress-https-port) take
part as `Reserved` listeners as old as the oldest Ingress: while Ingresses exist,
a new Service may not take those ports, and an Ingress never takes them from an
older Service (its Ingresses are then reported instead, master/lb/ingress.py).

Flow: Services -> listeners per port -> first come, first served -> the
controller leaves unservable Services out of the LB state and reports them
(Warning event + status condition).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace

from master.lb.endpoints import bind_addresses
from master.lb.model import LbAddresses, Unservable
from master.lb.pool import assign_addresses
from master.model import Service, lb_name

WILDCARDS = frozenset({"0.0.0.0", "::"})


@dataclass(frozen=True, slots=True)
class Listener:
    """One address:port the load balancer binds for a service port."""

    address: str
    port: int

    def overlaps(self, other: Listener) -> bool:
        if self.port != other.port:
            return False
        return (
            self.address == other.address or self.address in WILDCARDS or other.address in WILDCARDS
        )

    def __str__(self) -> str:
        return (
            f"[{self.address}]:{self.port}"
            if ":" in self.address
            else f"{self.address}:{self.port}"
        )


def listeners(
    svc: Service, addresses: LbAddresses, own: Mapping[str, str] | None = None
) -> list[tuple[int, Listener]]:
    """(index of the service port, listener) for every address the LB binds for `svc`
    (none for a headless Service: it gets no load balancer). `own` holds LoadBalancer
    Services' addresses from the pool."""
    if svc.headless:
        return []
    mine = (own or {}).get(lb_name(svc))
    external = mine or addresses.listen
    binds = bind_addresses(svc, external, addresses.bind_internal, mine is not None)
    return [
        (i, Listener(address, port.port + addresses.port_offset))
        for i, port in enumerate(svc.ports)
        if port.protocol == "TCP"
        for address in binds
    ]


def _age_order(services: Iterable[Service]) -> list[Service]:
    """LoadBalancer and NodePort Services first, then ClusterIP ones; oldest first in each.

    A ClusterIP Service has its own address (its cluster IP, served by the node proxies);
    the master's internal address is only a second way in, so it never keeps a port
    from a Service whose external address needs it."""
    return sorted(services, key=lambda s: (s.type == "ClusterIP", s.meta.created_at, lb_name(s)))


def _out_of_range(svc: Service, addresses: LbAddresses) -> Unservable | None:
    if svc.headless:
        return None
    for i, port in enumerate(svc.ports):
        listen = port.port + addresses.port_offset
        if port.protocol == "TCP" and not 1 <= listen <= 65535:
            return Unservable(
                lb_name(svc),
                "InvalidPort",
                f"spec.ports[{i}].port {port.port} plus the load balancer's port offset "
                f"{addresses.port_offset} is {listen}, outside 1-65535",
            )
    return None


def _clash(
    svc: Service,
    addresses: LbAddresses,
    taken: Sequence[tuple[Listener, str]],
    own: Mapping[str, str],
) -> tuple[int, Listener, str] | None:
    """The first listener of `svc` that another Service already holds: (port index, it, holder)."""
    for i, mine in listeners(svc, addresses, own):
        for theirs, holder in taken:
            if holder != lb_name(svc) and mine.overlaps(theirs):
                return i, theirs, holder
    return None


def _address_unavailable(svc: Service, addresses: LbAddresses) -> Unservable | None:
    """Without a pool there is one address: `loadBalancerIP` may only name it."""
    wanted = svc.load_balancer_ip
    if addresses.pool or not wanted or wanted in (addresses.listen, addresses.external_ip):
        return None
    return Unservable(
        lb_name(svc),
        "AddressNotAvailable",
        f"spec.loadBalancerIP {wanted}: the load balancer has one address, "
        f"{addresses.external_ip} (start the master with --lb-address-pool to give each "
        "LoadBalancer Service its own)",
    )


@dataclass(frozen=True, slots=True)
class Reserved:
    """Listeners the load balancer itself needs (the ingress ports), as old as `since`;
    `holder` names them in messages and keys them in the result when they lose."""

    holder: str
    description: str
    listeners: tuple[Listener, ...]
    since: float
    remedy: str = ""


def plan_services(
    services: Iterable[Service], addresses: LbAddresses, reserved: Sequence[Reserved] = ()
) -> tuple[dict[str, str], dict[str, Unservable]]:
    """(LoadBalancer Services' own addresses from the pool, the Services the LB must leave
    out); every other Service is served. Oldest first: a new Service never takes an
    address or a port from one that already serves. A `reserved` set of listeners takes
    part by its age too; when an older Service holds one of its ports, it is reported in
    the second map under its `holder` (which no Service name can equal)."""
    ordered = _age_order(services)
    if addresses.pool:
        own, unservable = assign_addresses(ordered, addresses.pool)
    else:
        own, unservable = {}, {}
    taken: list[tuple[Listener, str]] = []
    waiting = sorted(reserved, key=lambda r: r.since)

    def take_reserved(before: float) -> None:
        while waiting and waiting[0].since <= before:
            r = waiting.pop(0)
            for mine in r.listeners:
                for theirs, holder in taken:
                    if mine.overlaps(theirs):
                        unservable[r.holder] = Unservable(
                            r.holder,
                            "PortConflict",
                            f"{mine}, which {r.description} listens on, is already used by "
                            f"service/{holder} (older); delete it or {r.remedy}",
                            other=f"service/{holder}",
                        )
                        break
                if r.holder in unservable:
                    break
            if r.holder not in unservable:
                taken.extend((listener, r.description) for listener in r.listeners)

    for svc in ordered:
        take_reserved(svc.meta.created_at)
        if lb_name(svc) in unservable:
            continue
        problem = _out_of_range(svc, addresses) or _address_unavailable(svc, addresses)
        clash = _clash(svc, addresses, taken, own) if problem is None else None
        if clash is not None:
            i, listener, holder = clash
            other = holder if " " in holder else f"service/{holder}"
            message = f"spec.ports[{i}].port: {listener} is already used by {other}"
            if svc.type == "ClusterIP" and svc.cluster_ip:
                # Only this second way in is lost: the node proxies serve its own address.
                message += f" (pods still reach it at its cluster IP {svc.cluster_ip})"
            problem = Unservable(lb_name(svc), "PortConflict", message, other=other)
        if problem is not None:
            unservable[lb_name(svc)] = problem
            own.pop(lb_name(svc), None)
            continue
        taken.extend((listener, lb_name(svc)) for _, listener in listeners(svc, addresses, own))
    take_reserved(float("inf"))
    return own, unservable


def find_unservable(services: Iterable[Service], addresses: LbAddresses) -> dict[str, Unservable]:
    """Services the LB must leave out, by name; every other Service is served."""
    return plan_services(services, addresses)[1]


_NEWER_THAN_ANY = 1e18

# What apply refuses; anything else (a pool with no address left) leaves a Service pending.
_REFUSED_AT_APPLY = frozenset(
    {"PortConflict", "InvalidPort", "AddressNotInPool", "AddressInUse", "AddressNotAvailable"}
)


def admission_errors(
    new: Sequence[Service],
    existing: Iterable[Service],
    addresses: LbAddresses,
    reserved: Sequence[Reserved] = (),
) -> list[str]:
    """One sentence per Service of an apply that could not be served next to the others.

    `existing` are the stored Services; those being re-applied are replaced by their new
    version, which keeps its age and address. New Services come after every stored one,
    in the order given. A Service that cannot be served already (stored before this check
    existed) holds nothing.
    """
    stored = {lb_name(s): s for s in existing}
    candidates = [s for name, s in stored.items() if name not in {lb_name(n) for n in new}]
    for index, svc in enumerate(new):
        old = stored.get(lb_name(svc))
        if old is not None:
            aged = replace(svc.meta, created_at=old.meta.created_at)
            candidates.append(replace(svc, meta=aged, ingress_ip=old.ingress_ip))
        else:
            # Younger than anything stored, in the order given.
            aged = replace(svc.meta, created_at=_NEWER_THAN_ANY + index)
            candidates.append(replace(svc, meta=aged))
    _, unservable = plan_services(candidates, addresses, reserved)
    errors = []
    for svc in new:
        problem = unservable.get(lb_name(svc))
        if problem is None or problem.reason not in _REFUSED_AT_APPLY:
            continue
        if svc.type == "ClusterIP" and problem.reason == "PortConflict":
            # Its cluster IP serves it anyway; the master's internal address does not.
            continue
        fix = ""
        if problem.reason == "PortConflict" and problem.other.startswith("service/"):
            fix = f"; choose another port or delete {problem.other} first"
        elif problem.reason == "PortConflict":
            fix = "; choose another port"
        elif problem.reason == "AddressInUse":
            fix = f"; choose another address or delete {problem.other} first"
        errors.append(f"service/{svc.meta.name}: {problem.message}{fix}")
    return errors


@dataclass(frozen=True, slots=True)
class StatusEvent:
    """An event to record for a Service whose load-balancer status changed."""

    type: str  # Normal | Warning
    reason: str
    message: str


def service_status(
    svc: Service,
    problem: Unservable | None,
    addresses: LbAddresses,
    now: float,
    own_address: str = "",
) -> tuple[Service, StatusEvent | None]:
    """`svc` with the status the LB gives it, and the event that change deserves (if any).

    A served Service shows its addresses (a LoadBalancer Service with an address from the
    pool shows that one as both); an unservable one shows none (kubectl prints
    `<pending>`) and carries the reason until it is served.
    """
    if problem is not None:
        since = svc.lb_since if svc.lb_reason == problem.reason else now
        new = _with_status(svc, "", problem.reason, problem.message, since)
        event = None
        if (svc.lb_reason, svc.lb_message) != (problem.reason, problem.message):
            event = StatusEvent("Warning", problem.reason, problem.message)
        return new, event
    ingress = (own_address or addresses.external_ip) if svc.type == "LoadBalancer" else ""
    udp = udp_not_served(svc)
    if udp:
        # TCP ports (if any) are served at the address; the UDP ones are said not to be.
        tcp = any(p.protocol == "TCP" for p in svc.ports)
        since = svc.lb_since if svc.lb_reason == UDP_NOT_SERVED else now
        new = _with_status(svc, ingress if tcp else "", UDP_NOT_SERVED, udp, since)
        changed = (svc.lb_reason, svc.lb_message) != (UDP_NOT_SERVED, udp)
        return new, StatusEvent("Warning", UDP_NOT_SERVED, udp) if changed else None
    new = _with_status(svc, ingress, "", "", 0.0)
    event = None
    if svc.lb_reason:
        event = StatusEvent("Normal", "LoadBalancerServing", "the load balancer serves it now")
    return new, event


UDP_NOT_SERVED = "UDPNotServedByLoadBalancer"


def udp_not_served(svc: Service) -> str:
    """For a LoadBalancer Service with UDP ports: one sentence saying the master's HAProxy
    (TCP only) does not serve them and where they are served instead; else ""."""
    if svc.type != "LoadBalancer":
        return ""
    udp = [(i, p) for i, p in enumerate(svc.ports) if p.protocol == "UDP"]
    if not udp:
        return ""
    named = ", ".join(
        f"spec.ports[{i}] {p.port}/UDP" + (f" (node port {p.node_port})" if p.node_port else "")
        for i, p in udp
    )
    return (
        f"{named}: the load balancer (HAProxy) serves TCP only, so no external address "
        "answers UDP; reach it at the Service's cluster IP from pods, or at its node port "
        "on any node's address"
    )


def _with_status(svc: Service, ingress: str, reason: str, message: str, since: float) -> Service:
    """The cluster IP is not the load balancer's: apply gives it (master/app/clusterip.py)."""
    current = (svc.ingress_ip, svc.lb_reason, svc.lb_message, svc.lb_since)
    if current == (ingress, reason, message, since):
        return svc
    return replace(
        svc,
        ingress_ip=ingress,
        lb_reason=reason,
        lb_message=message,
        lb_since=since,
    )
