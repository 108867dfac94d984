"""DnsServer: runs this node's dnsmasq, keeps it running, and hands it the cluster's names.

Why a dnsmasq per node: pods ask a server on their own machine, so names keep
resolving while the master is away (the last table stays in the hosts file and
in dnsmasq) and no lookup crosses the network; dnsmasq is a small, old, real DNS
server that re-reads a hosts directory on change and forwards every other name
to the node's resolvers, so pinnace writes files, never DNS packets.

Lifecycle: `start` makes the node's DNS address an address of this machine when
it is not one (a `local` route on lo, as kube-proxy does for service addresses,
remembered in a marker file so only the agent that added it removes it), writes
the config, stops a dnsmasq a killed agent left behind (found by its pid file
and its command line naming this config), then starts dnsmasq and waits until it
has bound its socket (it writes its pid file then) or died (the reason is its
last words). `run` restarts it when it exits; `stop` ends it and removes the
route. The names file survives the agent: a restarted agent's dnsmasq answers
with the last table before the master has said anything.

SRV records are served by a second dnsmasq the node's forwards to (agent/dns/srvdns.py):
dnsmasq reads them only at start, and the node's dnsmasq is never restarted for them --
a new SRV dnsmasq takes the change and the node's is told with SIGHUP, so no query goes
unanswered while the records change.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Iterable
from pathlib import Path

from agent.dns import dnsmasq
from agent.dns.render import (
    DnsmasqConfig,
    DnsName,
    SrvRecord,
    render_config,
    render_hosts,
    render_srv,
)
from agent.dns.srvdns import SrvDns, SrvDnsError
from kernel.files import write_atomic

log = logging.getLogger(__name__)

DEFAULT_DIR = "/run/pinnace/dns"
START_TIMEOUT = 5.0
RESTART_BACKOFF_MAX = 30.0


class DnsStartError(Exception):
    """The node's DNS server cannot run; the message says why, in one sentence."""


def is_local_address(ip: str) -> bool:
    """Whether a socket can bind to `ip` on this machine."""
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            sock.bind((ip, 0))
    except OSError:
        return False
    return True


def layout(root: Path, node: str) -> tuple[Path, Path, Path, Path]:
    """(directory, config, pid file, hosts directory) of a node's dnsmasq."""
    directory = root / node
    return directory, directory / "dnsmasq.conf", directory / "dnsmasq.pid", directory / "hosts"


_owned_pid = dnsmasq.owned_pid
_running = dnsmasq.running


def stop_node_dns(root: Path, node: str) -> None:
    """Cleans up after a node whose agent was killed (tests): ends its dnsmasq, by the pid in
    its pid file, removes the route the agent added and the node's directory."""
    directory, conf, pid_file, _ = layout(root, node)
    # The node's dnsmasq and its SRV records' (agent/dns/srvdns.py).
    pairs = [(pid_file, conf), *((p, p.with_suffix(".conf")) for p in directory.glob("srv-*.pid"))]
    for pids, config in pairs:
        pid = _owned_pid(pids, config)
        if pid:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
    marker = directory / "route"
    with contextlib.suppress(OSError):
        address = marker.read_text().strip()
        subprocess.run(
            ["ip", "route", "del", "local", f"{address}/32", "dev", "lo", "table", "local"],
            capture_output=True,
            check=False,
        )
    shutil.rmtree(directory, ignore_errors=True)


async def _run(*command: str) -> str:
    """Runs a command; "" when it succeeded, else its error output."""
    try:
        proc = await asyncio.create_subprocess_exec(
            *command, stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE
        )
    except OSError as exc:
        return str(exc)
    _, err = await proc.communicate()
    return "" if proc.returncode == 0 else (err.decode(errors="replace").strip() or "failed")


class DnsServer:
    def __init__(
        self,
        node: str,
        address: str,
        domain: str,
        root: Path,
        binary: str = "dnsmasq",
        backoff: float = 1.0,
        port: int = 53,
    ) -> None:
        directory, conf, pid_file, hosts_dir = layout(root, node)
        self._dir, self._conf, self._pid_file, self._hosts_dir = (
            directory,
            conf,
            pid_file,
            hosts_dir,
        )
        self._route_marker = directory / "route"
        # The SRV records as last rendered: read at start, so a restarted agent serves them.
        self._srv_file = directory / "srv.conf"
        self._srv_dns = SrvDns(directory, node, domain, binary, lost=self._srv_lost)
        self._config = DnsmasqConfig(
            node,
            address,
            domain,
            hosts_dir,
            pid_file,
            port=port,
            servers_file=self._srv_dns.servers_file,
        )
        self._binary = binary
        # The first wait before restarting a dnsmasq that exited (doubled up to 30 s).
        self._backoff = backoff
        self._proc: asyncio.subprocess.Process | None = None
        self._last_words = ""
        self._stopping = False
        self._hosts = ""
        self._srv = ""
        self._swaps: set[asyncio.Task[None]] = set()
        self._swap_lock = asyncio.Lock()
        # How often new SRV records were taken by a new SRV dnsmasq (tests, logs).
        self.srv_swaps = 0

    @property
    def address(self) -> str:
        return self._config.address

    @property
    def domain(self) -> str:
        return self._config.domain

    async def start(self) -> None:
        """Prepares and starts dnsmasq; raises DnsStartError with the reason."""
        try:
            for folder in (self._dir, self._hosts_dir):
                folder.mkdir(parents=True, exist_ok=True)
                # dnsmasq reads the names after dropping to an unprivileged user.
                folder.chmod(0o755)
        except OSError as exc:
            raise DnsStartError(
                f"cannot use {self._dir} ({exc.strerror}); give --dns-dir a directory the "
                "agent may write and every user may read"
            ) from None
        await self._own_address()
        write_atomic(self._conf, render_config(self._config).encode(), 0o644)
        names = self._hosts_dir / "cluster"
        if not names.exists():
            write_atomic(names, render_hosts((), self.domain).encode(), 0o644)
        if self._srv_file.exists():
            self._srv = self._srv_file.read_text()
        else:
            self._srv = render_srv((), self.domain)
            write_atomic(self._srv_file, self._srv.encode(), 0o644)
        await self._stop_stale()
        await self._srv_dns.stop_stale()
        try:
            # First: the node's dnsmasq reads the servers file naming it at start.
            await self._srv_dns.serve(self._srv)
        except SrvDnsError as exc:
            raise DnsStartError(str(exc)) from None
        try:
            await self._spawn()
        except DnsStartError:
            await self._srv_dns.stop()
            raise

    async def _own_address(self) -> None:
        address = self.address
        if is_local_address(address):
            return
        failed = await _run("ip", "route", "replace", "local", f"{address}/32", "dev", "lo")
        if failed:
            raise DnsStartError(
                f"cannot make {address} an address of this machine (ip route: {failed}); "
                "run the agent as root, or give --cluster-dns an address it has"
            )
        write_atomic(self._route_marker, address.encode(), 0o644)

    async def _stop_stale(self) -> None:
        pid = _owned_pid(self._pid_file, self._conf)
        if not pid:
            return
        log.info("stopping dnsmasq %d left by an earlier agent", pid)
        await dnsmasq.stop_pid(pid)

    async def _spawn(self) -> None:
        with contextlib.suppress(FileNotFoundError):
            self._pid_file.unlink()
        try:
            proc = await dnsmasq.launch(self._binary, self._conf)
        except OSError as exc:
            raise DnsStartError(f"cannot run {self._binary}: {exc.strerror or exc}") from None
        self._proc = proc
        asyncio.get_running_loop().create_task(dnsmasq.relay(proc, self._said))
        if await dnsmasq.bound(proc, self._pid_file, self._conf, START_TIMEOUT):
            log.info("cluster DNS for pods on %s:53 (%s)", self.address, self.domain)
            return
        await asyncio.sleep(0.1)  # its last words
        raise DnsStartError(
            f"dnsmasq did not start on {self.address}:{self._config.port}: "
            f"{self._last_words or 'no answer'}"
        )

    def _said(self, line: str) -> None:
        self._last_words = line

    def update(self, names: Iterable[DnsName], srv: Iterable[SrvRecord] = ()) -> None:
        """Writes the names for dnsmasq when they changed (it re-reads the file itself), and
        hands changed SRV records to a new SRV dnsmasq (agent/dns/srvdns.py)."""
        text = render_hosts(names, self.domain)
        if text != self._hosts:
            write_atomic(self._hosts_dir / "cluster", text.encode(), 0o644)
            self._hosts = text
        records = render_srv(srv, self.domain)
        if records != self._srv:
            write_atomic(self._srv_file, records.encode(), 0o644)
            self._srv = records
            if self._proc is not None:
                self._swap_soon()

    async def settled(self) -> None:
        """Returns once every SRV swap set going (by `update`, or by an SRV dnsmasq that
        ended) has ended: then what an update asked of the SRV dnsmasqs is done, and a test
        can read the outcome instead of sleeping and hoping a swap had its turn."""
        while self._swaps:
            await asyncio.wait(set(self._swaps))

    def _swap_soon(self) -> None:
        task = asyncio.get_running_loop().create_task(self._swap())
        self._swaps.add(task)
        task.add_done_callback(self._swaps.discard)

    def _srv_lost(self) -> None:
        """The SRV dnsmasq ended by itself: another, after a pause (it may end again)."""

        async def later() -> None:
            await asyncio.sleep(self._backoff)
            await self._swap()

        task = asyncio.get_running_loop().create_task(later())
        self._swaps.add(task)
        task.add_done_callback(self._swaps.discard)

    async def _swap(self) -> None:
        """A new SRV dnsmasq on the newest records, then SIGHUP: the node's dnsmasq re-reads
        its servers file (now naming the new one) and clears its cache, without a gap.
        Swaps queue behind each other; one that finds the newest records served is done."""
        async with self._swap_lock:
            if self._stopping or self._srv_dns.records == self._srv:
                return
            try:
                await self._srv_dns.serve(self._srv)
            except SrvDnsError as exc:
                log.warning("%s; SRV answers keep the earlier records", exc)
                return
            proc = self._proc
            if proc is not None and proc.returncode is None:
                with contextlib.suppress(ProcessLookupError):
                    proc.send_signal(signal.SIGHUP)
            self.srv_swaps += 1
            log.info("SRV records now served by a new dnsmasq (the node's was told: SIGHUP)")

    async def run(self) -> None:
        """Keeps dnsmasq running: restarts it when it exits, waiting longer each time. It
        never ends by itself (the agent ends it): DNS trouble must not stop the agent."""
        backoff = self._backoff
        while not self._stopping:
            proc = self._proc
            if proc is None:  # never started: nothing to keep running
                await asyncio.Event().wait()
                continue
            started = time.monotonic()
            code = await proc.wait()
            if self._stopping:
                return
            log.warning(
                "dnsmasq exited with %s (%s); restarting in %.0fs", code, self._last_words, backoff
            )
            await asyncio.sleep(backoff)
            if self._stopping:
                return  # stopped during the wait: nothing to restart
            quiet = time.monotonic() - started > 60
            backoff = self._backoff if quiet else min(2 * backoff, RESTART_BACKOFF_MAX)
            try:
                await self._spawn()
            except DnsStartError as exc:
                log.warning("%s", exc)
            except Exception:
                log.exception("restarting dnsmasq failed; trying again")
            if self._stopping and self._proc is not None:
                # stop() ran while this one was being launched and ended the old process:
                # this one is the supervisor's to end, or it outlives the agent.
                await dnsmasq.end(self._proc)
                return

    async def stop(self) -> None:
        """Ends dnsmasq and removes the route this agent added (the names file stays)."""
        self._stopping = True
        for task in list(self._swaps):
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        proc = self._proc
        if proc is not None:
            await dnsmasq.end(proc)
        await self._srv_dns.stop()
        if self._route_marker.exists():
            failed = await _run(
                "ip", "route", "del", "local", f"{self.address}/32", "dev", "lo", "table", "local"
            )
            if failed and "No such process" not in failed:
                log.warning("could not remove the route to %s: %s", self.address, failed)
            with contextlib.suppress(FileNotFoundError):
                self._route_marker.unlink()
