"""The LoadBalancer address pool: one external address per LoadBalancer Service (pure).

With `pinnace master --lb-address-pool`, every LoadBalancer Service gets an address of its
own from the pool (MetalLB's model; on a laptop, loopback addresses such as
127.0.0.10-127.0.0.20 need no network setup), so any number of Services can listen on
port 80. `parse_pool(text)` reads the flag: a range `A-B`, a CIDR `A/N` or a list `A,B,C`
(mixed freely). `assign_addresses(services, pool)` decides, oldest Service first:

  * `spec.loadBalancerIP` is honoured when it is in the pool and no older Service holds it;
    otherwise the Service is unservable, and the reason names the pool or the holder;
  * an address a Service already has (shown as its EXTERNAL-IP) stays with it, so a master
    restart or another Service's arrival never moves a working Service;
  * the others take the lowest free address; when none is left, the Service stays pending
    with a reason (AddressPoolExhausted) until an address is freed.

Flow: Services + pool -> {name: address} and {name: Unservable} -> conflicts.py binds each
LoadBalancer Service on its own address only.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Sequence

from master.lb.model import Unservable
from master.model import Service, lb_name

# A pool larger than this is a typo (a /8 would allocate 16 million strings).
MAX_POOL = 65_536


def parse_pool(text: str) -> tuple[str, ...]:
    """The addresses of `--lb-address-pool`, in order; ValueError with one sentence."""
    addresses: list[str] = []
    for raw in text.split(","):
        part = raw.strip()
        if part:
            addresses += _expand(part, MAX_POOL - len(addresses))
    if not addresses:
        raise ValueError("no address given (e.g. 127.0.0.10-127.0.0.20)")
    seen: set[str] = set()
    for address in addresses:
        if address in seen:
            raise ValueError(f"{address} is given twice")
        seen.add(address)
    return tuple(addresses)


def _expand(part: str, room: int) -> list[str]:
    shape = "an address, a range A-B or a CIDR A/N"
    try:
        if "/" in part:
            network = ipaddress.ip_network(part, strict=False)
            count = network.num_addresses
            if count > room:
                raise OverflowError
            hosts = list(network.hosts()) if count > 2 else list(network)
            return [str(h) for h in hosts]
        if "-" in part:
            first_text, last_text = part.split("-", 1)
            first = ipaddress.ip_address(first_text.strip())
            last = ipaddress.ip_address(last_text.strip())
            count = int(last) - int(first) + 1
            if first.version != last.version or count < 1:
                raise ValueError(f"{part!r} does not go from a lower to a higher address")
            if count > room:
                raise OverflowError
            return [str(first + i) for i in range(count)]
        return [str(ipaddress.ip_address(part))]
    except OverflowError:
        raise ValueError(f"more than {MAX_POOL} addresses in all") from None
    except ValueError as e:
        if "lower to a higher" in str(e):
            raise
        raise ValueError(f"{part!r} is not {shape}") from None


def describe_pool(pool: Sequence[str]) -> str:
    """A short text for messages: `127.0.0.10-127.0.0.20 (11 addresses)`."""
    if len(pool) == 1:
        return pool[0]
    return f"{pool[0]}..{pool[-1]} ({len(pool)} addresses)"


def _wants_address(svc: Service) -> bool:
    return str(svc.type) == "LoadBalancer"


def assign_addresses(
    services: Iterable[Service], pool: Sequence[str]
) -> tuple[dict[str, str], dict[str, Unservable]]:
    """Each LoadBalancer Service's address, and the ones that get none (with the reason)."""
    in_pool = set(pool)
    ordered = sorted(
        (s for s in services if _wants_address(s)), key=lambda s: (s.meta.created_at, lb_name(s))
    )
    assigned: dict[str, str] = {}
    holder: dict[str, str] = {}
    problems: dict[str, Unservable] = {}
    # Oldest first: a requested address, else the one the Service already shows.
    for svc in ordered:
        name, wanted, current = lb_name(svc), svc.load_balancer_ip, svc.ingress_ip
        if wanted and wanted not in in_pool:
            problems[name] = Unservable(
                name,
                "AddressNotInPool",
                f"spec.loadBalancerIP {wanted} is not in the load balancer's address pool "
                f"{describe_pool(pool)}",
            )
        elif wanted and wanted in holder:
            problems[name] = Unservable(
                name,
                "AddressInUse",
                f"spec.loadBalancerIP {wanted} is already service/{holder[wanted]}'s",
                other=f"service/{holder[wanted]}",
            )
        elif wanted:
            assigned[name], holder[wanted] = wanted, name
        elif current in in_pool and current not in holder:
            assigned[name], holder[current] = current, name
    free = (a for a in pool if a not in holder)
    for svc in ordered:
        name = lb_name(svc)
        if name in assigned or name in problems:
            continue
        address = next(free, None)
        if address is None:
            problems[name] = Unservable(
                name,
                "AddressPoolExhausted",
                f"no address left in the load balancer's pool {describe_pool(pool)}: every one "
                "is another LoadBalancer Service's (delete one, or widen --lb-address-pool)",
            )
            continue
        assigned[name], holder[address] = address, name
    return assigned, problems
