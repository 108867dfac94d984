"""Gives each pod of this node the route to its node proxy, inside the pod's namespace.

Only needed when the agent does not run where the pods' packets leave (its address on
the pods' network is not their gateway; agent/nodeproxy/podroute.py decides, and says
why). Then every container of this node gets `<service range> via <agent address>
proto 112` in its own network namespace, entered through /proc/<pid>/ns/net with
`nsenter` and set with the agent's `ip` (the pod's image needs neither): the agent
container needs the host's PID namespace and CAP_SYS_ADMIN (setns) and CAP_NET_ADMIN
(the route) -- compose/docker-compose.yml gives it exactly those.

When:
- at once after each container starts (`after_start`, called by the runtime before it
  reports the container started), so a pod reaches Services from its first second;
- for every running container when the service range is first known or changes, and
  so on agent start for the containers it adopts (`run`, fed by the service tables).
Both are idempotent (podroute.route_commands), so overlapping is harmless. A pod's
routes go with its namespace; the agent removes only routes it added (its protocol
number), never one that something else put there.

A failure never fails a pod: it is logged, and said once as a node event
(PodRouteFailed) with what to do.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import threading
from collections.abc import Awaitable, Callable, Sequence

import psutil

from agent.iproute import parse_routes, run_explained
from agent.nodeproxy.podroute import PodNetwork, choose_via, route_commands
from agent.nodeproxy.table import ServiceTable
from agent.runtime.port import ContainerInfo
from kernel.processes import pid_alive

log = logging.getLogger(__name__)

Runner = Callable[[int, Sequence[str]], str]


class PodRouteError(RuntimeError):
    """A command in a pod's namespace failed: one sentence saying what to do."""


def run_in_netns(pid: int, command: Sequence[str]) -> str:
    """Run `command` in the network namespace of process `pid`; its output."""
    return run_explained(
        ["nsenter", f"--net=/proc/{pid}/ns/net", "--", *command],
        PodRouteError,
        missing="install nsenter (util-linux) and ip (iproute2) where the agent runs",
        refused="an agent in a container needs the host's PID namespace (pid: host), "
        "CAP_SYS_ADMIN and CAP_NET_ADMIN (compose/docker-compose.yml's agents have them)",
    )


class PodRoutes:
    """`via`: the agent's address on the pods' network; `running()`: this node's
    containers; `notify(reason, message)`: a node event for users."""

    def __init__(
        self,
        via: str,
        running: Callable[[], Awaitable[list[ContainerInfo]]],
        notify: Callable[[str, str], None] | None = None,
        runner: Runner = run_in_netns,
    ) -> None:
        self.via = via
        self._running = running
        self._notify = notify or (lambda reason, message: None)
        self._run = runner
        self._lock = threading.Lock()
        self._cidr = ""
        self._latest = ""
        self._failing = False
        self._wake = asyncio.Event()
        # The range every running container was given (for tests and logs).
        self.swept = ""

    def offer(self, table: ServiceTable) -> None:
        """A service table (ServiceTables subscriber): only its range matters here."""
        if table.service_cidr and table.service_cidr != self._latest:
            self._latest = table.service_cidr
            self._wake.set()

    def after_start(self, info: ContainerInfo) -> None:
        """The runtime started `info` (called in its worker thread): route it now, if the
        range is known; else the sweep that comes with the first table does."""
        with self._lock:
            cidr = self._cidr
        if cidr and info.pid:
            self._ensure_quietly(info, cidr)

    async def run(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            cidr = self._latest
            # Set before listing: a container started after this reads the new range in
            # after_start; one started before is running in the list below.
            with self._lock:
                self._cidr = cidr
            try:
                containers = await self._running()
            except Exception as e:  # the engine is away: the next table tries again
                log.warning("pod routes: cannot list this node's containers: %s", e)
                continue
            for info in containers:
                if info.state == "running" and info.pid:
                    await asyncio.to_thread(self._ensure_quietly, info, cidr)
            self.swept = cidr
            log.info("pod routes: %s via %s in this node's pods", cidr, self.via)

    def ensure(self, pid: int, cidr: str) -> list[list[str]]:
        """Give the namespace of `pid` the route (and none other of ours); the commands run."""
        current = parse_routes(self._run(pid, ["ip", "-j", "-4", "route", "show"]))
        commands = route_commands(current, cidr, self.via)
        for command in commands:
            self._run(pid, command)
        return commands

    def _ensure_quietly(self, info: ContainerInfo, cidr: str) -> None:
        try:
            self.ensure(info.pid, cidr)
        except PodRouteError as e:
            if not pid_alive(info.pid):
                return  # the container ended meanwhile: nothing to route
            log.error("pod routes: %s: %s", info.name, e)
            # One event until routing works again, not one per pod.
            if not self._failing:
                self._failing = True
                self._notify(
                    "PodRouteFailed",
                    f"{e}; pods on this node cannot reach Services' cluster IPs",
                )
        else:
            self._failing = False


def local_addresses() -> set[str]:
    """This network namespace's own IPv4 addresses."""
    return {
        a.address
        for addresses in psutil.net_if_addrs().values()
        for a in addresses
        if a.family == socket.AF_INET
    }


async def pod_routes_for(
    network: str,
    ranges: Callable[[], list[tuple[str, str]]],
    running: Callable[[], Awaitable[list[ContainerInfo]]],
    notify: Callable[[str, str], None],
) -> PodRoutes | None:
    """The PodRoutes pods on `network` need, or None (said in the log) when they need none:
    `ranges()` gives the network's (subnet, gateway) pairs (a blocking engine call)."""
    try:
        found = await asyncio.to_thread(ranges)
    except Exception as e:  # the engine is away or the network is missing
        why = f"cannot inspect pod network {network} ({e}); pods get no service route"
        log.error("pod routes: %s", why)
        notify("PodRouteFailed", why)
        return None
    via = choose_via(network, [PodNetwork(s, g) for s, g in found], local_addresses())
    log.info("pod routes: %s", via.why)
    if via.trouble:
        notify("PodRouteFailed", via.why)
    return PodRoutes(via.address, running, notify) if via.address else None
