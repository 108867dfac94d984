"""The node proxy's shell: the newest service table in, the route set, HAProxy programmed.

`plan_step` (pure, agent/nodeproxy/plan.py) decides what one table asks for: the
route for a new service range, then start, reload, Runtime API commands (only
endpoints changed) or nothing. `NodeProxy.run` carries it out: it keeps only the
newest table (tables arrive whole; one that waits is simply replaced), makes at most
one change per `min_interval`, and never lets a failure stop the agent -- it logs one
sentence and tries again with the next table or after `retry_after`.

A new service range is made local first; then, before HAProxy is given a config,
every listener is test-bound (agent/nodeproxy/listeners.py): one the node cannot
bind (a process on the node holds the port) is left out and reported for its
Service -- `report` hands the master the whole list whenever it changes, which shows
it as a Warning event and a status condition of the Service -- while every other
Service is served. Refused listeners are tried again every `reprobe_after` (a test
bind costs microseconds), so a freed port is served without any new table.

A Service's UDP ports are not HAProxy's: `udp` (agent/nodeproxy/udpkernel.py) puts them
into the node's kernel NAT with each table; a failure there is reported as a node event
and never stops the TCP side. With `node` (the advertise address and kube-proxy's
--nodeport-addresses, agent/nodeproxy/nodeaddresses.py), node ports are served on the
node's addresses too.

Started, the proxy is adopted from its pid file (agent/nodeproxy/process.py), so
an agent restart costs no connection; it is stopped only when the agent is asked
to (`--stop-node-proxy-on-exit`) or by `stop_proxy`.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Collection
from dataclasses import dataclass
from pathlib import Path

from agent.nodeproxy import process
from agent.nodeproxy.listeners import BindFailure, try_bind
from agent.nodeproxy.nodeaddresses import NO_NODE_PORTS, NodePortAddresses
from agent.nodeproxy.plan import ProxyStep, plan_step
from agent.nodeproxy.render import ProxySettings
from agent.nodeproxy.route import RouteError, make_local
from agent.nodeproxy.slots import Endpoint, ProxyState, listeners
from agent.nodeproxy.table import ServiceTable
from agent.nodeproxy.udpkernel import UdpRules, UdpRulesError, remove_udp_rules
from kernel.clock import Clock
from kernel.files import write_atomic

log = logging.getLogger(__name__)

DEFAULT_SETTINGS = ProxySettings()


@dataclass(frozen=True, slots=True, order=True)
class ListenerProblem:
    """A Service port this node's proxy cannot serve, and why (for the master to show)."""

    namespace: str
    service: str
    port: str
    reason: str
    message: str


def problems_for(
    wanted: dict[Endpoint, tuple[str, str, str]], failures: Collection[BindFailure]
) -> tuple[ListenerProblem, ...]:
    """One problem per Service port with a refused listener (a node port's several binds
    named in one sentence, in the order asked for), in a stable order (pure)."""
    by_port: dict[tuple[str, str, str], list[BindFailure]] = {}
    order = list(wanted)
    for f in sorted(failures, key=lambda f: order.index(f.listener)):
        by_port.setdefault(wanted[f.listener], []).append(f)
    found = []
    for (namespace, service, label), refused in by_port.items():
        where = " and ".join(
            f"[{f.address}]:{f.port}" if ":" in f.address else f"{f.address}:{f.port}"
            for f in refused
        )
        what = "node port" if "(node port" in label else "cluster IP port"
        message = (
            f"the node proxy cannot listen on {where} ({refused[0].detail}); this {what} "
            "does not answer on this node until the port is free there"
        )
        found.append(ListenerProblem(namespace, service, label, refused[0].reason, message))
    return tuple(sorted(found))


class NodeProxy:
    def __init__(
        self,
        workdir: Path,
        clock: Clock,
        haproxy_bin: str = "haproxy",
        settings: ProxySettings = DEFAULT_SETTINGS,
        min_interval: float = 0.3,
        retry_after: float = 5.0,
        reprobe_after: float = 2.0,
        route: Callable[[str], None] = make_local,
        notify: Callable[[str, str], None] | None = None,
        report: Callable[[tuple[ListenerProblem, ...]], None] | None = None,
        probe: Callable[[str, int], BindFailure | None] = try_bind,
        node: NodePortAddresses = NO_NODE_PORTS,
        udp: UdpRules | None = None,
    ) -> None:
        self.paths = process.ProxyPaths(workdir)
        self._clock = clock
        self._bin = haproxy_bin
        self._settings = settings
        self._min_interval = min_interval
        self._retry_after = retry_after
        self._reprobe_after = reprobe_after
        self._route = route
        # Tells the master what users should see as a node event (Session.notify).
        self._notify = notify or (lambda reason, message: None)
        self._told = ""
        # Tells the master which Services this node cannot serve (the whole list).
        self._report = report or (lambda problems: None)
        self._probe = probe
        self._node = node
        self._udp = udp
        self._udp_failed = ""
        self._problems: tuple[ListenerProblem, ...] = ()
        self._refused: frozenset[Endpoint] = frozenset()
        self._state: ProxyState | None = None
        self._rewake: asyncio.Task[None] | None = None
        # How the last change was made ("start", "reload", "runtime", "none"; for tests).
        self.last_action = ""
        self._latest: ServiceTable | None = None
        self._wake = asyncio.Event()
        self._routed = ""
        self._route_failed = ""
        self._applied = ""
        self._pid: int | None = None
        # The table version HAProxy serves now (for tests and logs); -1: none yet.
        self.serving_version = -1
        self.served = asyncio.Event()

    def offer(self, table: ServiceTable) -> None:
        """A new table from the master (ServiceTables subscriber): the newest wins."""
        self._latest = table
        self._wake.set()

    def adopt(self) -> int | None:
        """Take over an HAProxy a previous agent left running: it keeps serving its config
        (the last table that agent had) until the master sends a new one."""
        self.paths.workdir.mkdir(parents=True, exist_ok=True)
        self._pid = process.find_running(self.paths)
        if self._pid is not None:
            try:
                self._applied = self.paths.config.read_text()
            except OSError:
                self._applied = ""
            log.info("node proxy: adopted HAProxy (pid %d) and the config it serves", self._pid)
        return self._pid

    async def run(self) -> None:
        await asyncio.to_thread(self.adopt)
        while True:
            await self._wake.wait()
            self._wake.clear()
            table = self._latest
            if table is None:
                continue
            try:
                await self._apply(table)
            except RouteError:
                # Said once (in _apply); tried again when the next table comes.
                continue
            except Exception as e:  # one bad table must not stop the agent
                log.error("node proxy: %s; trying again in %.0f s", e, self._retry_after)
                self._tell(f"{e}; pods on this node may not reach Services' cluster IPs")
                await self._clock.sleep(self._retry_after)
                self._wake.set()
                continue
            if self._refused and (self._rewake is None or self._rewake.done()):
                self._rewake = asyncio.create_task(self._wake_later())
            await self._clock.sleep(self._min_interval)

    async def _wake_later(self) -> None:
        """Try refused listeners again: the port may be free now, with no new table."""
        await self._clock.sleep(self._reprobe_after)
        self._wake.set()

    async def _apply(self, table: ServiceTable) -> None:
        if table.service_cidr and table.service_cidr != self._routed:
            # The range first: until it is local no cluster IP can be bound, and the test
            # binds below would refuse every listener -- as they did in an agent container
            # that restarted (a fresh namespace without the route): every cluster IP of
            # that node unserved and a Warning on each Service until the retry 2 s later.
            await self._make_route(table.service_cidr)
        running = self._pid is not None and process.pid_alive(self._pid)
        wanted = listeners(table, self._node)
        failures = await asyncio.to_thread(self._probe_all, wanted)
        refused = frozenset(f.listener for f in failures)
        step = plan_step(
            table,
            self._state,
            running,
            self._routed,
            refused,
            self._applied,
            self._settings,
            self._node,
        )
        await self._carry_out(step)
        self._state, self._applied, self.last_action = step.state, step.text, step.action
        if refused != self._refused:
            for f in failures:
                if f.listener not in self._refused:
                    log.warning("node proxy: cannot listen on %s:%d: %s", *f.listener, f.detail)
            self._refused = refused
        problems = problems_for(wanted, failures)
        if problems != self._problems:
            self._problems = problems
            self._report(problems)
        await self._apply_udp(table)
        self._served(table)

    async def _apply_udp(self, table: ServiceTable) -> None:
        """The UDP ports into the kernel; a failure is told once and tried with the next
        table, and never stops the TCP side."""
        if self._udp is None:
            return
        try:
            await asyncio.to_thread(self._udp.apply, table)
        except (UdpRulesError, OSError) as e:
            if str(e) != self._udp_failed:
                self._udp_failed = str(e)
                log.error("node proxy: %s", e)
                self._tell(str(e))
            return
        self._udp_failed = ""

    def _probe_all(self, wanted: dict[Endpoint, tuple[str, str, str]]) -> list[BindFailure]:
        return [f for f in (self._probe(a, p) for a, p in sorted(wanted)) if f is not None]

    async def _make_route(self, cidr: str) -> None:
        try:
            await asyncio.to_thread(self._route, cidr)
        except RouteError as e:
            if self._route_failed != cidr:
                log.error("node proxy: %s; Services' cluster IPs are not served here", e)
                self._route_failed = cidr
                self._tell(f"{e}; Services' cluster IPs are not served on this node")
            raise
        self._routed = cidr
        log.info("node proxy: service range %s is local to this node", cidr)

    async def _carry_out(self, step: ProxyStep) -> None:
        if step.action == "none":
            return
        if step.action == "runtime":
            try:
                await asyncio.to_thread(process.run_commands, self.paths, step.commands)
            except process.ProxyError as e:
                # What HAProxy holds is uncertain now: the reload makes it the config's.
                log.warning("node proxy: %s; reloading instead", e)
            else:
                # The file keeps describing what runs, for the next reload and an adopter.
                await asyncio.to_thread(write_atomic, self.paths.config, step.text.encode(), 0o644)
                return
        previous = self._applied
        await asyncio.to_thread(process.install, self._bin, self.paths, step.text)
        if step.action == "start" or self._pid is None:
            self._pid = await asyncio.to_thread(process.start, self._bin, self.paths)
            log.info("node proxy: HAProxy started (pid %d)", self._pid)
            return
        try:
            await asyncio.to_thread(process.reload, self._pid, self.paths)
        except process.ProxyError:
            # The old workers still serve the old config: the file says so again.
            if previous:
                await asyncio.to_thread(write_atomic, self.paths.config, previous.encode(), 0o644)
            self._state = None
            raise
        log.info("node proxy: HAProxy reloaded (%s)", step.reason)

    def _tell(self, message: str) -> None:
        """A NodeProxyUnavailable node event, once per distinct trouble."""
        if message != self._told:
            self._told = message
            self._notify("NodeProxyUnavailable", message)

    def _served(self, table: ServiceTable) -> None:
        self.serving_version = table.version
        self.served.set()

    async def stop(self) -> int | None:
        """Stop HAProxy (the agent was asked to take its data plane down with it)."""
        pid = await asyncio.to_thread(process.stop, self.paths)
        if self._udp is not None:
            await asyncio.to_thread(self._udp.remove)
        self._pid = None
        return pid


def stop_proxy(workdir: Path) -> int | None:
    """Stop the node proxy of an agent's state dir (and delete its UDP rules); its PID, or
    None if no HAProxy ran."""
    remove_udp_rules(workdir)
    return process.stop(process.ProxyPaths(workdir))
