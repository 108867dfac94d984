"""Which route a pod needs to reach cluster IPs, and the `ip` commands that give it (pure).

The node proxy makes the service range local to the agent's network namespace
(agent/nodeproxy/route.py). When the agent runs on the engine's host that is the
host's namespace, the pods' gateway: a pod's packet to a cluster IP leaves through
its default route and lands on the proxy with no route of its own. When the agent
runs in a container of its own (the compose demo: an agent container per node on
the pods' network), the pods' gateway is the host, where no proxy listens; the pods
of this node must send the service range to the agent's own address on their
network instead. `choose_via` tells the two cases apart from the network's facts;
`route_commands` turns what a pod's namespace holds into the commands that give it
`<service range> via <that address>`.

Routes the agent adds carry a protocol number of their own (`ip route ... proto 112`,
an unassigned value): that marks them as ours, so a later agent (a new service range,
a new address after its container restarted) replaces or deletes only those, and a
route to the range that anything else put there is left alone.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Collection, Sequence
from dataclasses import dataclass

from agent.iproute import Route

# The rtnetlink protocol our routes carry (RTPROT_*: 0-4 the kernel's, 8-18, 42, 99 and
# 186-192 routing daemons'; /etc/iproute2/rt_protos). Any route with it is the agent's.
PROTO = 112


@dataclass(frozen=True, slots=True)
class PodNetwork:
    """One IPAM range of the pods' Docker network: its subnet and its gateway."""

    subnet: str
    gateway: str = ""


@dataclass(frozen=True, slots=True)
class Via:
    """Where pods of this node send the service range: `address` ("" when they get no
    route of ours), `why`, one sentence for the agent's log, and whether that is
    `trouble` (pods cannot reach the node proxy: users should see it as an event)."""

    address: str
    why: str
    trouble: bool = False


def ours(route: Route) -> bool:
    """Whether pinnace put `route` there (its protocol number), so it may replace it."""
    return route.protocol == str(PROTO)


def _gateway_of(net: PodNetwork) -> str:
    """The network's gateway: as configured, else the subnet's first address (Docker's
    default when IPAM leaves it out)."""
    if net.gateway:
        return net.gateway
    network = ipaddress.ip_network(net.subnet, strict=False)
    return str(next(network.hosts(), network.network_address))


def choose_via(network: str, ranges: Sequence[PodNetwork], local: Collection[str]) -> Via:
    """Whether pods on `network` need a route to the agent, and to which address.

    `ranges` are the network's IPv4 ranges, `local` this namespace's own addresses. A
    gateway among them: the agent runs where the pods' packets leave anyway (the host),
    no route is needed. Else the agent's address inside a range is the next hop; no such
    address: the agent is not on that network and its proxy cannot be reached at all."""
    ipv4 = [r for r in ranges if ipaddress.ip_network(r.subnet, strict=False).version == 4]
    if not ipv4:
        return Via("", f"pod network {network} has no IPv4 range: pods get no service route", True)
    for r in ipv4:
        if _gateway_of(r) in local:
            return Via(
                "",
                f"pod network {network}'s gateway {_gateway_of(r)} is this machine's: pods "
                "reach the node proxy through their default route",
            )
    for r in ipv4:
        subnet = ipaddress.ip_network(r.subnet, strict=False)
        for address in sorted(local):
            try:
                if ipaddress.ip_address(address) in subnet:
                    return Via(
                        address,
                        f"pods on {network} send the service range to this agent at {address} "
                        "(their gateway is another machine's)",
                    )
            except ValueError:
                continue
    return Via(
        "",
        f"this agent has no address on pod network {network} and its gateway is not this "
        f"machine's: pods cannot reach the node proxy (attach the agent to {network})",
        True,
    )


def route_commands(current: Sequence[Route], cidr: str, via: str) -> list[list[str]]:
    """The `ip` commands (run in the pod's namespace) that leave `cidr via via` there and
    none other of ours; `cidr` or `via` "" asks for no route (ours are removed).

    Idempotent: a namespace that holds the route gets no command. A route to the same
    range that is not ours wins: nothing is added over it (the pod or its image wanted it)."""
    want = str(ipaddress.ip_network(cidr, strict=False)) if cidr and via else ""
    commands: list[list[str]] = []
    for r in current:
        if ours(r) and r.dst != want:
            commands.append(["ip", "-4", "route", "del", r.dst, "proto", str(PROTO)])
    if not want:
        return commands
    present = [r for r in current if r.dst == want]
    if present and (not ours(present[0]) or present[0].gateway == via):
        return commands
    commands.append(["ip", "-4", "route", "replace", want, "via", via, "proto", str(PROTO)])
    return commands
