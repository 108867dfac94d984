"""The SRV records' own dnsmasq, replaced without a gap in any answer.

dnsmasq reads SRV records (`srv-host=`) only from its config, at start. Restarting the
node's dnsmasq for each change left pods' DNS unanswered for the restart: 41-61 ms
median, 100 ms worst, at load 23 (tests/bench/dns_srv_gap.py). So the node's dnsmasq
(agent/dns/server.py) is never restarted for them: it answers the cluster's A records
from its hosts directory and forwards the rest of `svc.<domain>` -- the SRV names, and
names no Service has, which get NXDOMAIN -- to a second dnsmasq on 127.0.0.1 holding the
SRV records alone (`render_srv_config`).

A change starts a new SRV dnsmasq on another free port with the new records; once it has
bound, the servers file the node's dnsmasq reads (`servers-file=`, re-read on SIGHUP,
which also clears its cache) is pointed at it, the caller sends the SIGHUP, and the old
one is stopped `retire_after` seconds later, once the queries forwarded to it have been
answered. Every query is answered throughout, with the old records or the new.

Files beside the node's config: `srv-<port>.conf` and `srv-<port>.pid` per instance, and
`servers.conf`. An instance a killed agent left is found by them (`stop_stale`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from agent.dns import dnsmasq
from agent.dns.render import render_servers, render_srv_config
from kernel.files import write_atomic

log = logging.getLogger(__name__)

START_TIMEOUT = 5.0
SERVERS_FILE = "servers.conf"


class SrvDnsError(Exception):
    """The SRV dnsmasq could not start: one sentence."""


def free_port() -> int:
    """A port free on 127.0.0.1 for both UDP and TCP now (dnsmasq binds both)."""
    for _ in range(20):
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
            udp.bind(("127.0.0.1", 0))
            port = int(udp.getsockname()[1])
            with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as tcp:
                try:
                    tcp.bind(("127.0.0.1", port))
                except OSError:
                    continue
            return port
    raise SrvDnsError("no free port on 127.0.0.1 for the SRV records' dnsmasq")


@dataclass(slots=True)
class _Instance:
    proc: asyncio.subprocess.Process
    port: int
    conf: Path
    pid_file: Path
    records: str


class SrvDns:
    """The current SRV dnsmasq and the one it replaced (until retired)."""

    def __init__(
        self,
        directory: Path,
        node: str,
        domain: str,
        binary: str = "dnsmasq",
        retire_after: float = 1.0,
        lost: Callable[[], None] | None = None,
    ) -> None:
        self._dir = directory
        self._node = node
        self._domain = domain
        self._binary = binary
        self._retire_after = retire_after
        # Called when the current instance ends by itself (the caller starts another).
        self._lost = lost or (lambda: None)
        self.servers_file = directory / SERVERS_FILE
        self._current: _Instance | None = None
        # Every instance started and not yet ended (the current one and those retiring).
        self._started: list[_Instance] = []
        self._retiring: set[asyncio.Task[None]] = set()
        self._last_words = ""
        self._stopping = False

    @property
    def records(self) -> str | None:
        """The records the current instance serves (None: none runs)."""
        current = self._current
        return current.records if current and current.proc.returncode is None else None

    async def stop_stale(self) -> None:
        """Stops SRV dnsmasqs an earlier agent left, by their pid files."""
        for pid_file in sorted(self._dir.glob("srv-*.pid")):
            pid = dnsmasq.owned_pid(pid_file, pid_file.with_suffix(".conf"))
            if pid:
                log.info("stopping SRV dnsmasq %d left by an earlier agent", pid)
                await dnsmasq.stop_pid(pid)
        for leftover in [*self._dir.glob("srv-*.pid"), *self._dir.glob("srv-*.conf")]:
            leftover.unlink(missing_ok=True)

    async def serve(self, records: str, attempts: int = 3) -> None:
        """A new instance with `records`, and the servers file pointed at it (the caller
        sends the node's dnsmasq SIGHUP); the previous one is retired a moment later.
        Raises SrvDnsError; then the previous one keeps serving. A port taken between
        choosing it and dnsmasq's bind is tried again on another."""
        for attempt in range(attempts):
            try:
                await self._serve_once(records)
                return
            except SrvDnsError:
                if attempt == attempts - 1 or "Address in use" not in self._last_words:
                    raise

    async def _serve_once(self, records: str) -> None:
        port = free_port()
        conf, pid_file = self._dir / f"srv-{port}.conf", self._dir / f"srv-{port}.pid"
        text = render_srv_config(self._node, port, self._domain, pid_file, records)
        write_atomic(conf, text.encode(), 0o644)
        pid_file.unlink(missing_ok=True)
        try:
            proc = await self._launch(conf, pid_file)
        except OSError as exc:
            conf.unlink(missing_ok=True)
            raise SrvDnsError(f"cannot run {self._binary}: {exc.strerror or exc}") from None
        asyncio.get_running_loop().create_task(dnsmasq.relay(proc, self._said))
        try:
            up = await dnsmasq.bound(proc, pid_file, conf, START_TIMEOUT)
        except asyncio.CancelledError:  # stopped meanwhile: leave no dnsmasq behind
            await dnsmasq.end(proc)
            conf.unlink(missing_ok=True)
            pid_file.unlink(missing_ok=True)
            raise
        if not up:
            await dnsmasq.end(proc)
            await asyncio.sleep(0.1)  # its last words
            conf.unlink(missing_ok=True)
            raise SrvDnsError(
                f"the SRV records' dnsmasq did not start on 127.0.0.1:{port}: "
                f"{self._last_words or 'no answer'}"
            )
        instance = _Instance(proc, port, conf, pid_file, records)
        self._started.append(instance)
        write_atomic(self.servers_file, render_servers(self._domain, port).encode(), 0o644)
        old, self._current = self._current, instance
        self._keep(self._watch(instance))
        if old is not None:
            self._keep(self._retire(old, self._retire_after))

    async def _launch(self, conf: Path, pid_file: Path) -> asyncio.subprocess.Process:
        """dnsmasq.launch; if this is cancelled (the agent stops) before the launch has
        returned, the process (which may exist already) is ended and its files removed. On
        a busy machine the launch (its pipes connected on the loop) can come back after the
        process has written its pid file; cancelled there, it was left running. The node's
        own dnsmasq has the same guard (agent/dns/server.py run)."""
        launching = asyncio.ensure_future(dnsmasq.launch(self._binary, conf))
        try:
            return await asyncio.shield(launching)
        except asyncio.CancelledError:
            with contextlib.suppress(OSError):
                await dnsmasq.end(await launching)
            conf.unlink(missing_ok=True)
            pid_file.unlink(missing_ok=True)
            raise

    def _said(self, line: str) -> None:
        self._last_words = line

    def _keep(self, work: Coroutine[Any, Any, None]) -> None:
        task = asyncio.get_running_loop().create_task(work)
        self._retiring.add(task)
        task.add_done_callback(self._retiring.discard)

    async def _watch(self, instance: _Instance) -> None:
        code = await instance.proc.wait()
        if instance is self._current and not self._stopping:
            log.warning(
                "the SRV records' dnsmasq exited with %s (%s); starting another",
                code,
                self._last_words,
            )
            self._lost()

    async def _retire(self, instance: _Instance, after: float) -> None:
        # The queries the node's dnsmasq forwarded before its SIGHUP are answered first.
        await asyncio.sleep(after)
        await dnsmasq.end(instance.proc)
        instance.conf.unlink(missing_ok=True)
        instance.pid_file.unlink(missing_ok=True)
        if instance in self._started:
            self._started.remove(instance)

    async def stop(self) -> None:
        """Ends every instance (the node's DNS is being stopped)."""
        self._stopping = True
        for task in list(self._retiring):
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        for instance in list(self._started):
            await self._retire(instance, 0)
        self._current = None
