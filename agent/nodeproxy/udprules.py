"""UDP Services in the node's kernel: which NAT rules for which endpoints, as nftables text (pure).

HAProxy proxies TCP only, so a Service's UDP ports are served as kube-proxy serves every
port: a packet to `<cluster IP>:<port>/udp` (or to any of the node's addresses at the
port's node port, except loopback) is DNATed to one ready endpoint, picked at random per
new flow (`numgen random mod N`, kube-proxy's nftables mode), and conntrack keeps every
later packet of that flow on the same endpoint. The agent only applies what this module
decides (agent/nodeproxy/udpkernel.py): one table of its own, replaced whole with one
`nft -f` (atomic), deleted when no UDP Service is left or the node proxy is stopped.

Where an endpoint is reached: a pod on this very machine (its published address is one
of the machine's own, `local`) at its container address and container port, as the
agent reported them -- a DNAT from a pod's bridge to a loopback published port would be
dropped as martian, and Docker's own port DNAT does not run again after ours; a pod on
another machine at its node's address and host port (Docker there forwards it). Every
DNATed flow is masqueraded (kube-proxy's masquerade-all): the reply then comes back
through this node whichever bridge or machine the endpoint is on, so the client sees the
Service's address answer.

Conntrack (`stale_flows`): a flow stays on its endpoint for as long as packets keep
coming, so when an endpoint goes its flows are deleted (the client's next packet is a
new flow to a live endpoint), and when a port gets its first endpoint the flows to it
that were never translated are deleted too -- kube-proxy does both for UDP.

IPv4 and IPv6 (kube-proxy's nftables mode keeps one table per family; this keeps one
`inet` table for both, as NAT in `inet` tables has worked since Linux 5.2): a Service with
an IPv6 cluster IP is matched with `ip6 daddr`, a node port on every local IPv6 address
but ::1 as well as IPv4, and a packet goes to an endpoint of its own family only -- the
kernel cannot translate between families (that would be NAT64), so a port whose endpoints
are all IPv4 (Docker's default pod networks) answers IPv4 clients alone, and an IPv6
client's packet to it is refused as one to a port without endpoints.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Collection, Iterable
from dataclasses import dataclass

from agent.nodeproxy.slots import served
from agent.nodeproxy.table import Backend, ServiceTable

# The mark a DNATed packet carries so that postrouting masquerades it (kube-proxy's bit).
MASQUERADE_MARK = 0x4000
_UNSAFE = re.compile(r"[^A-Za-z0-9_]")


@dataclass(frozen=True, slots=True, order=True)
class UdpTarget:
    """Where one endpoint's packets are sent."""

    address: str
    port: int

    @property
    def family(self) -> int:
        return family(self.address)

    def nft(self) -> str:
        """`dnat` needs the family in an inet table, and brackets for IPv6."""
        if self.family == 6:
            return f"ip6 to [{self.address}]:{self.port}"
        return f"ip to {self.address}:{self.port}"


@dataclass(frozen=True, slots=True, order=True)
class UdpPort:
    """One UDP Service port: its cluster IP and port, its node port (0 none), its targets."""

    namespace: str
    service: str
    cluster_ip: str
    port: int
    node_port: int
    targets: tuple[UdpTarget, ...]


def table_name(node: str) -> str:
    """The agent's nftables table: one per node, so agents sharing a machine never touch
    each other's (both hold the same rules: the first to match translates)."""
    return "pinnace_udp_" + _UNSAFE.sub("_", node)[:200]


def family(text: str) -> int:
    """4 or 6 for an IP address, 0 for anything else."""
    try:
        return ipaddress.ip_address(text).version
    except ValueError:
        return 0


def _ipv4(text: str) -> bool:
    return family(text) == 4


def target_of(backend: Backend, local: Collection[str]) -> UdpTarget | None:
    """Where a backend is reached from this machine (None: it cannot be)."""
    if backend.address in local:
        if family(backend.pod_ip) and backend.target_port:
            return UdpTarget(backend.pod_ip, backend.target_port)
        if ipaddress.ip_address(backend.address).is_loopback:
            # Published on loopback with no container address known: unreachable from pods.
            return None
    if not family(backend.address) or not backend.port:
        return None
    return UdpTarget(backend.address, backend.port)


def udp_ports(table: ServiceTable, local: Collection[str]) -> tuple[UdpPort, ...]:
    """Every UDP port of a Service with a cluster IP (IPv4 or IPv6), with its targets
    (sorted); `local` holds the backend addresses that are this machine's own."""
    found = []
    for svc in served(table):
        if not family(svc.cluster_ip):
            continue
        for port in svc.ports:
            if port.protocol.upper() != "UDP":
                continue
            targets = {t for b in port.backends if (t := target_of(b, local)) is not None}
            found.append(
                UdpPort(
                    svc.namespace or "default",
                    svc.name,
                    svc.cluster_ip,
                    port.port,
                    port.node_port,
                    tuple(sorted(targets)),
                )
            )
    return tuple(sorted(found))


def backend_addresses(table: ServiceTable) -> set[str]:
    """The addresses whose locality the agent must find out for `udp_ports`."""
    return {
        b.address
        for svc in table.services
        for p in svc.ports
        if p.protocol.upper() == "UDP"
        for b in p.backends
    }


def _node_port_rules(node_port: int, chain: str, node_ranges: Iterable[str]) -> list[str]:
    """A node port on every local address but loopback, per family; with `node_ranges`
    (--nodeport-addresses) only on those in them (a family without a range: none)."""
    ranges = list(node_ranges)
    rules = []
    for fam, match, loopback in ((4, "ip", "127.0.0.0/8"), (6, "ip6", "::1")):
        mine = [r for r in ranges if ipaddress.ip_network(r).version == fam]
        if ranges and not mine:
            continue
        only = f"{match} daddr {{ {', '.join(mine)} }} " if mine else ""
        rules.append(
            f"    {only}{match} daddr != {loopback} fib daddr type local "
            f"udp dport {node_port} goto {chain}"
        )
    return rules


def render_rules(name: str, ports: Iterable[UdpPort], node_ranges: Iterable[str] = ()) -> str:
    """The whole table as one `nft -f` script: it creates the table if missing, deletes
    it and writes it anew in one transaction, so the kernel never holds half of it (and
    removes the IPv4-only table of this name an earlier agent made). Ports without a
    target get no rule (a packet to them is refused by the node, as kube-proxy rejects
    it). Node ports answer on every local address but loopback, or, with `node_ranges`
    (--nodeport-addresses), on those in the ranges."""
    ranges = tuple(node_ranges)
    services: list[str] = []
    chains: list[str] = []
    for i, port in enumerate(p for p in ports if p.targets):
        chain = f"svc{i}"
        match = "ip6" if family(port.cluster_ip) == 6 else "ip"
        services.append(f"    {match} daddr {port.cluster_ip} udp dport {port.port} goto {chain}")
        if port.node_port:
            services += _node_port_rules(port.node_port, chain, ranges)
        picks = []
        for fam, proto in ((4, "ipv4"), (6, "ipv6")):
            numbered = [(j, t) for j, t in enumerate(port.targets) if t.family == fam]
            if numbered:
                vmap = ", ".join(f"{k} : goto {chain}_ep{j}" for k, (j, _) in enumerate(numbered))
                picks.append(
                    f"    meta nfproto {proto} numgen random mod {len(numbered)} vmap {{ {vmap} }}"
                )
        chains += [
            f"  # {port.namespace}/{port.service} {port.cluster_ip}:{port.port}/udp",
            f"  chain {chain} {{",
            *picks,
            "  }",
        ]
        for j, target in enumerate(port.targets):
            chains += [
                f"  chain {chain}_ep{j} {{",
                f"    meta mark set meta mark | {MASQUERADE_MARK:#x} "
                f"meta l4proto udp dnat {target.nft()}",
                "  }",
            ]
    # Just before Docker's NAT (-100 and 100): ours translates first, and only once.
    hook = "type nat hook {} priority {}; policy accept;"
    lines = [
        "# Written by the pinnace agent (node proxy): UDP Services (agent/nodeproxy/udprules.py).",
        *_delete_lines(name),
        f"table inet {name}",
        f"delete table inet {name}",
        f"table inet {name} {{",
        "  chain prerouting {",
        "    " + hook.format("prerouting", -110),
        "    jump services",
        "  }",
        "  chain output {",
        "    " + hook.format("output", -110),
        "    jump services",
        "  }",
        "  chain postrouting {",
        "    " + hook.format("postrouting", 90),
        f"    meta mark & {MASQUERADE_MARK:#x} == {MASQUERADE_MARK:#x} masquerade",
        "  }",
        "  chain services {",
        *services,
        "  }",
        *chains,
        "}",
    ]
    return "\n".join(lines) + "\n"


def _delete_lines(name: str) -> list[str]:
    """Delete the IPv4-only table an earlier agent named so (add-if-missing, then delete:
    no error when there is none)."""
    return [f"table ip {name}", f"delete table ip {name}"]


def delete_script(name: str) -> str:
    """`nft -f` text deleting this node's tables, whichever family they are."""
    return (
        "\n".join([*_delete_lines(name), f"table inet {name}", f"delete table inet {name}"]) + "\n"
    )


@dataclass(frozen=True, slots=True, order=True)
class StaleFlows:
    """Conntrack entries to delete: UDP flows to `orig_dst` ("" any address: a node port)
    port `port`, answered by `reply_src`:`reply_port` ("", 0 any: flows never translated)."""

    orig_dst: str
    port: int
    reply_src: str = ""
    reply_port: int = 0
    # 6: IPv6 flows (conntrack deletes IPv4 ones unless told `-f ipv6`).
    family: int = 4

    def conntrack_args(self) -> list[str]:
        args = ["conntrack", "-D", "-p", "udp"]
        if self.family == 6:
            args += ["-f", "ipv6"]
        if self.orig_dst:
            args += ["--orig-dst", self.orig_dst]
        args += ["--orig-port-dst", str(self.port)]
        if self.reply_src:
            args += ["--reply-src", self.reply_src, "--reply-port-src", str(self.reply_port)]
        return args


def _entries(port: UdpPort) -> list[tuple[str, int, int]]:
    """(address, port, family) a client sends to for this Service port ("" = any node
    address, of either family)."""
    found = [(port.cluster_ip, port.port, family(port.cluster_ip))]
    if port.node_port:
        found += [("", port.node_port, 4), ("", port.node_port, 6)]
    return found


def stale_flows(before: Iterable[UdpPort], after: Iterable[UdpPort]) -> tuple[StaleFlows, ...]:
    """What to delete from conntrack when the rules go from `before` to `after`: flows of
    every endpoint a Service port no longer has (or of a port gone), and every flow of a
    port that had no endpoint before and has one now (those were never translated)."""
    old: dict[tuple[str, int, int], set[UdpTarget]] = {}
    for port in before:
        for entry in _entries(port):
            old[entry] = {t for t in port.targets if t.family == entry[2]}
    new: dict[tuple[str, int, int], set[UdpTarget]] = {}
    for port in after:
        for entry in _entries(port):
            new[entry] = {t for t in port.targets if t.family == entry[2]}
    flows: set[StaleFlows] = set()
    for (address, number, fam), targets in old.items():
        gone = targets - new.get((address, number, fam), set())
        flows |= {StaleFlows(address, number, t.address, t.port, fam) for t in gone}
    for (address, number, fam), targets in new.items():
        if targets and not old.get((address, number, fam)):
            flows.add(StaleFlows(address, number, family=fam))
    return tuple(sorted(flows))
