"""The node proxy's shell: the newest service table in, the route set, HAProxy programmed.

`plan_step` (pure) decides what one table asks for: the route for a new service
range, and whether HAProxy must start (none runs), reload (the config text
changed) or be left alone. `NodeProxy.run` carries it out: it keeps only the
newest table (tables arrive whole; one that waits is simply replaced), makes
at most one change per `min_interval` so a rollout's burst of endpoint changes
becomes a few reloads, and never lets a failure stop the agent -- it logs one
sentence and tries again with the next table or after `retry_after`.

Started, the proxy is adopted from its pid file (agent/nodeproxy/process.py), so
an agent restart costs no connection; it is stopped only when the agent is asked
to (`--stop-node-proxy-on-exit`) or by `stop_proxy`.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from agent.nodeproxy import process
from agent.nodeproxy.render import ProxySettings, render_config
from agent.nodeproxy.route import RouteError, make_local
from agent.nodeproxy.table import ServiceTable
from kernel.clock import Clock

log = logging.getLogger(__name__)

Action = Literal["start", "reload", "none"]
DEFAULT_SETTINGS = ProxySettings()


@dataclass(frozen=True, slots=True)
class ProxyStep:
    """What to do for one table: route this range first ("" none), then `action` with `text`."""

    route: str
    action: Action
    text: str


def plan_step(
    table: ServiceTable,
    applied: str,
    running: bool,
    routed: str,
    settings: ProxySettings = DEFAULT_SETTINGS,
) -> ProxyStep:
    """`applied` is the config HAProxy runs ("" unknown), `routed` the range already local."""
    route = table.service_cidr if table.service_cidr and table.service_cidr != routed else ""
    text = render_config(table, settings)
    if not running:
        return ProxyStep(route, "start", text)
    if _body(text) != _body(applied):
        return ProxyStep(route, "reload", text)
    return ProxyStep(route, "none", text)


def _body(text: str) -> str:
    """The config without its comment header (the table version alone is no change)."""
    return "\n".join(line for line in text.splitlines() if not line.startswith("#"))


class NodeProxy:
    def __init__(
        self,
        workdir: Path,
        clock: Clock,
        haproxy_bin: str = "haproxy",
        settings: ProxySettings = DEFAULT_SETTINGS,
        min_interval: float = 0.3,
        retry_after: float = 5.0,
        route: Callable[[str], None] = make_local,
        notify: Callable[[str, str], None] | None = None,
    ) -> None:
        self.paths = process.ProxyPaths(workdir)
        self._clock = clock
        self._bin = haproxy_bin
        self._settings = settings
        self._min_interval = min_interval
        self._retry_after = retry_after
        self._route = route
        # Tells the master what users should see as a node event (Session.notify).
        self._notify = notify or (lambda reason, message: None)
        self._told = ""
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
            await self._clock.sleep(self._min_interval)

    async def _apply(self, table: ServiceTable) -> None:
        running = self._pid is not None and process.pid_alive(self._pid)
        step = plan_step(table, self._applied, running, self._routed, self._settings)
        if step.route:
            try:
                await asyncio.to_thread(self._route, step.route)
            except RouteError as e:
                if self._route_failed != step.route:
                    log.error("node proxy: %s; Services' cluster IPs are not served here", e)
                    self._route_failed = step.route
                    self._tell(f"{e}; Services' cluster IPs are not served on this node")
                raise
            self._routed = step.route
            log.info("node proxy: service range %s is local to this node", step.route)
        if step.action == "none":
            self._served(table)
            return
        await asyncio.to_thread(process.install, self._bin, self.paths, step.text)
        if step.action == "start":
            self._pid = await asyncio.to_thread(process.start, self._bin, self.paths)
            log.info("node proxy: HAProxy started (pid %d)", self._pid)
        elif self._pid is not None:
            process.reload(self._pid)
        self._applied = step.text
        self._served(table)

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
        self._pid = None
        return pid


def stop_proxy(workdir: Path) -> int | None:
    """Stop the node proxy of an agent's state dir; its PID, or None if none ran."""
    return process.stop(process.ProxyPaths(workdir))
