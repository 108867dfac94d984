"""Which other nodes' pod subnets this machine routes, and the commands that do it (pure).

flannel's host-gw backend: every node's pods live on a bridge of the node's own
subnet of the cluster's pod range (the master's --cluster-cidr, handed out per node
like Kubernetes' node IPAM, master/app/podcidr.py), and every machine routes each
other node's subnet via that node's address: `ip route replace <subnet> via <node>`.
No overlay and no encapsulation; it needs the next hop on a network this machine is
attached to (one L2 network, as a rack, a cloud VPC subnet with source/destination
checks off, or the compose demo's bridge). `plan_routes` decides per node:
- this node, or a node whose address is this machine's (several agents on one
  machine, as in tests): its bridge is on this machine, directly connected: no route;
- a node whose address lies on a network this machine is attached to: a route;
- any other node is refused, with the sentence users see as a Warning event: its
  pods' addresses cannot be reached from here, so this node's DNS keeps giving their
  node's address for them (agent/dns/render.py reads `reachable`).

Routes carry a protocol number of their own (PROTO, `ip route ... proto 114`): a later
agent replaces or deletes only those, and only inside the cluster's range, so another
cluster's agents on the same machine and routes anything else made are left alone.

The firewall: Docker's FORWARD rules drop packets that enter a bridge from elsewhere
unless they answer a published port, and masquerade whatever leaves a bridge. flannel
accepts the pod range in FORWARD and exempts pod-to-pod traffic from masquerading;
pinnace does the same in the chains Docker leaves to users and to NAT: one ACCEPT in
DOCKER-USER and one RETURN at the head of nat POSTROUTING, both for `-s <range> -d
<range>` (pod to pod only), both marked with a comment. `firewall_commands` keeps each
ahead of every rule that is not another pinnace range's (Docker inserts its masquerade
rules at the head of POSTROUTING when it makes a network).
"""

from __future__ import annotations

import ipaddress
import shlex
from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass

from agent.iproute import Route

# The rtnetlink protocol of our host routes (agent/nodeproxy/podroute.py's pod routes
# have 112; see /etc/iproute2/rt_protos for the numbers routing daemons use).
PROTO = 114
COMMENT = "pinnace pod network"


@dataclass(frozen=True, slots=True)
class NodeSubnet:
    """One node's pod subnet and the address its pods are reached through."""

    node: str
    address: str
    pod_cidr: str


@dataclass(frozen=True, slots=True)
class Refusal:
    node: str
    why: str


@dataclass(frozen=True, slots=True)
class RoutePlan:
    """`routes`: (subnet, next hop) this machine needs; `reachable`: the nodes whose pods'
    own addresses answer from this machine; `refused`: the others, and why."""

    routes: tuple[tuple[str, str], ...] = ()
    reachable: frozenset[str] = frozenset()
    refused: tuple[Refusal, ...] = ()


def _network(text: str) -> ipaddress.IPv4Network | None:
    try:
        network = ipaddress.ip_network(text, strict=False)
    except ValueError:
        return None
    return network if isinstance(network, ipaddress.IPv4Network) else None


def _address(text: str) -> ipaddress.IPv4Address | None:
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        return None
    return address if isinstance(address, ipaddress.IPv4Address) else None


def plan_routes(
    me: str,
    cluster_cidr: str,
    subnets: Iterable[NodeSubnet],
    local_addresses: Collection[str],
    local_networks: Iterable[str],
) -> RoutePlan:
    """The routes and reachable nodes for this machine (see the module's docstring).

    `local_addresses`: this machine's IPv4 addresses; `local_networks`: the networks its
    interfaces are attached to (CIDR), the pods' own bridges included."""
    cluster = _network(cluster_cidr)
    if cluster is None:
        return RoutePlan()
    attached = [n for n in map(_network, local_networks) if n is not None and not n.is_loopback]
    # The networks a next hop may be on: not a pod bridge (inside the pod range).
    links = [n for n in attached if not n.subnet_of(cluster)]
    routes: list[tuple[str, str]] = []
    reachable: set[str] = set()
    refused: list[Refusal] = []
    for s in sorted(subnets, key=lambda s: s.node):
        subnet, via = _network(s.pod_cidr), _address(s.address)
        if subnet is None or not subnet.subnet_of(cluster):
            refused.append(Refusal(s.node, f"its pod subnet {s.pod_cidr!r} is not in {cluster}"))
            continue
        if s.node == me or (via is not None and (via.is_loopback or s.address in local_addresses)):
            reachable.add(s.node)  # its bridge is on this machine
            continue
        if via is None:
            refused.append(Refusal(s.node, f"its address {s.address!r} is not an IPv4 address"))
            continue
        clash = next((n for n in attached if n.overlaps(subnet)), None)
        if clash is not None:
            refused.append(
                Refusal(
                    s.node,
                    f"its pod subnet {subnet} overlaps this machine's network {clash}; give the "
                    "master a --cluster-cidr that no machine's network uses",
                )
            )
            continue
        if not any(via in n for n in links):
            refused.append(
                Refusal(
                    s.node,
                    f"its address {via} is on no network this machine is attached to: routing "
                    f"pod subnets via node addresses (host-gw) needs the nodes on one L2 "
                    f"network, so its pods ({subnet}) are reached at its address only",
                )
            )
            continue
        routes.append((str(subnet), str(via)))
        reachable.add(s.node)
    return RoutePlan(tuple(routes), frozenset(reachable), tuple(refused))


def route_commands(
    current: Sequence[Route], cluster_cidr: str, want: Iterable[tuple[str, str]]
) -> list[list[str]]:
    """The `ip` commands that leave exactly the wanted routes of ours inside the cluster's
    range: stale ones of ours deleted, missing or moved ones replaced. Idempotent."""
    cluster = _network(cluster_cidr)
    wanted = dict(want)
    ours = [r for r in current if r.protocol == str(PROTO)]
    commands: list[list[str]] = []
    for r in ours:
        net = _network(r.dst)
        inside = cluster is not None and net is not None and net.subnet_of(cluster)
        if inside and r.dst not in wanted:
            commands.append(["ip", "-4", "route", "del", r.dst, "proto", str(PROTO)])
    present = {r.dst: r.gateway for r in ours}
    for dst, via in sorted(wanted.items()):
        if present.get(dst) != via:
            commands.append(["ip", "-4", "route", "replace", dst, "via", via, "proto", str(PROTO)])
    return commands


def _rule(cluster: str, target: str) -> list[str]:
    comment = f"{COMMENT} {cluster}"
    return ["-s", cluster, "-d", cluster, "-m", "comment", "--comment", comment, "-j", target]


# (table, chain, target) of the two rules, in the order they are checked.
CHAINS = (("filter", "DOCKER-USER", "ACCEPT"), ("nat", "POSTROUTING", "RETURN"))


def firewall_commands(
    table: str, chain: str, target: str, listing: str, cluster: str
) -> list[list[str]]:
    """The `iptables` commands that put our rule for `cluster` ahead of every rule in
    `chain` that is not a pinnace pod network's, from `iptables -t T -S CHAIN` output."""
    rule = _rule(cluster, target)
    mine = f"{COMMENT} {cluster}"
    rows: list[list[str]] = []
    for line in listing.splitlines():
        try:
            words = shlex.split(line)
        except ValueError:
            continue
        if words[:2] == ["-A", chain]:
            rows.append(words[2:])
    first_foreign = next(
        (i for i, r in enumerate(rows) if not any(w.startswith(COMMENT) for w in r)), len(rows)
    )
    at = [i for i, r in enumerate(rows) if mine in r]
    base = ["iptables", "-w", "5", "-t", table]
    if at and at[0] < first_foreign:
        return []
    commands = [[*base, "-D", chain, *rule] for _ in at]
    return [*commands, [*base, "-I", chain, "1", *rule]]
