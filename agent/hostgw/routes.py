"""The host-gw shell: the service table's node subnets in, this machine's routes and
firewall rules out.

`offer` (a ServiceTables subscriber) plans at once (agent/hostgw/plan.py, pure) from
the table and this machine's addresses and networks, so the node's DNS, subscribed
after it, reads `reachable` for the same table. `run` carries a changed plan out in a
worker thread: `ip -4 route` for the other nodes' subnets and two iptables rules that let pod
traffic between nodes through Docker's forwarding rules, unmasqueraded. It applies on
every new table and again every `resync` seconds (flannel resyncs its rules every 5 s:
Docker inserts its own rules ahead of ours whenever it makes a network, and a rebooted
machine has lost routes). Every command is idempotent; nothing is removed when the
agent stops (the data plane outlives the agent, as the node proxy does).

A node whose subnet this machine cannot route (its address on no attached network)
is said once as a Warning event of this node (PodSubnetUnreachable); a failing command
once (PodRoutesFailed) until the routes apply again. Neither stops the agent.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import socket
from collections.abc import Callable, Sequence

import psutil

from agent.hostgw.plan import (
    CHAINS,
    RoutePlan,
    firewall_commands,
    plan_routes,
    route_commands,
)
from agent.iproute import parse_routes, run_explained
from agent.nodeproxy.table import ServiceTable
from agent.worker import wait_event
from kernel.clock import Clock

log = logging.getLogger(__name__)

RESYNC = 10.0
Runner = Callable[[Sequence[str]], str]


class HostRouteError(RuntimeError):
    """A route or firewall command failed: one sentence saying what to do."""


def run_command(command: Sequence[str]) -> str:
    """Run `command` on this machine; its output, or HostRouteError."""
    return run_explained(
        command,
        HostRouteError,
        missing="install iproute2 and iptables where the agent runs",
        refused="the agent needs root (CAP_NET_ADMIN) to route pod subnets",
    )


def local_interfaces() -> tuple[set[str], list[str]]:
    """This machine's IPv4 addresses and the networks its interfaces are attached to."""
    addresses: set[str] = set()
    networks: list[str] = []
    for entries in psutil.net_if_addrs().values():
        for a in entries:
            if a.family != socket.AF_INET:
                continue
            addresses.add(a.address)
            if a.netmask:
                interface = ipaddress.ip_interface(f"{a.address}/{a.netmask}")
                networks.append(str(interface.network))
    return addresses, networks


class HostRoutes:
    """`me`: this node's name; `notify(reason, message)`: a node event for users."""

    def __init__(
        self,
        me: str,
        clock: Clock,
        notify: Callable[[str, str], None] | None = None,
        runner: Runner = run_command,
        interfaces: Callable[[], tuple[set[str], list[str]]] = local_interfaces,
        resync: float = RESYNC,
        report: Callable[[str, tuple[tuple[str, str], ...]], None] | None = None,
    ) -> None:
        self._me = me
        self._clock = clock
        self._notify = notify or (lambda reason, message: None)
        self._run = runner
        self._interfaces = interfaces
        self._resync = resync
        self._report = report or (lambda ready, unreached: None)
        self._subnets: dict[str, str] = {}
        self._wake = asyncio.Event()
        self.cluster_cidr = ""
        self.plan = RoutePlan()
        self._refusals_told: tuple[str, ...] = ()
        self._failing = False
        # The plan last applied in full (for tests and logs).
        self.applied: RoutePlan | None = None

    @property
    def reachable(self) -> frozenset[str]:
        """The nodes whose pods answer at their own addresses from this machine."""
        return self.plan.reachable

    def offer(self, table: ServiceTable) -> None:
        """A new service table: planned now; applied by `run` only when the plan changed
        (most tables change endpoints only), else at the next resync."""
        addresses, networks = self._interfaces()
        plan = plan_routes(self._me, table.cluster_cidr, table.subnets, addresses, networks)
        subnets = {s.node: s.pod_cidr for s in table.subnets}
        changed = (plan, table.cluster_cidr, subnets) != (
            self.plan,
            self.cluster_cidr,
            self._subnets,
        )
        self.cluster_cidr, self.plan, self._subnets = table.cluster_cidr, plan, subnets
        told = tuple(sorted(f"node {r.node}: {r.why}" for r in self.plan.refused))
        if told != self._refusals_told:
            self._refusals_told = told
            for line in told:
                log.warning("host-gw: %s", line)
                self._notify("PodSubnetUnreachable", line)
        if changed:
            self._wake.set()

    async def run(self) -> None:
        while True:
            await wait_event(self._clock, self._wake, self._resync)
            self._wake.clear()
            if not self.cluster_cidr:
                continue
            plan, cluster, subnets = self.plan, self.cluster_cidr, self._subnets
            try:
                ran = await asyncio.to_thread(self.apply, plan, cluster)
            except HostRouteError as e:
                log.error("host-gw: %s", e)
                # Nothing of ours is known to be in place: this node's pods and the nodes
                # it needed a route to are shown at their nodes' addresses.
                self._report("", unreached_pairs(plan, subnets, failed=True))
                if not self._failing:
                    self._failing = True
                    self._notify(
                        "PodRoutesFailed",
                        f"{e}; pods on other nodes may not reach this node's pods at their "
                        "addresses",
                    )
                continue
            self._failing = False
            self.applied = plan
            # Said once routes and rules are in place: the master then shows this node's
            # pods at their own addresses, unless a node reports their subnet unreached.
            self._report(subnets.get(self._me, ""), unreached_pairs(plan, subnets))
            if ran:
                log.info("host-gw: %s", "; ".join(" ".join(c) for c in ran))

    def apply(self, plan: RoutePlan, cluster: str) -> list[list[str]]:
        """Routes and firewall rules as `plan` wants them for `cluster`; the commands run."""
        current = parse_routes(self._run(["ip", "-j", "-4", "route", "show"]))
        commands = route_commands(current, cluster, plan.routes)
        for table, chain, target in CHAINS:
            try:
                listing = self._run(["iptables", "-w", "5", "-t", table, "-S", chain])
            except HostRouteError:
                # No such chain: Docker does not manage this machine's firewall
                # (dockerd --iptables=false), so it drops nothing of ours either.
                continue
            commands += firewall_commands(table, chain, target, listing, cluster)
        for command in commands:
            try:
                self._run(command)
            except HostRouteError:
                # A removal another agent on this machine made first leaves what we wanted.
                if not _removes(command):
                    raise
        return commands


def unreached_pairs(
    plan: RoutePlan, subnets: dict[str, str], failed: bool = False
) -> tuple[tuple[str, str], ...]:
    """(node, pod subnet) of each node whose pods this machine cannot reach at their own
    addresses: refused by `plan`, or (`failed`: its commands failed) needing a route."""
    nodes = {r.node for r in plan.refused}
    if failed:
        via = {dst for dst, _ in plan.routes}
        nodes |= {n for n, cidr in subnets.items() if cidr in via}
    return tuple(sorted((n, subnets[n]) for n in nodes if n in subnets))


def _removes(command: Sequence[str]) -> bool:
    return "-D" in command or command[:4] == ["ip", "-4", "route", "del"]
