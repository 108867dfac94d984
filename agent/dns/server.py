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

from agent.dns.render import (
    DnsmasqConfig,
    DnsName,
    SrvRecord,
    render_config,
    render_hosts,
    render_srv,
)
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


def _owned_pid(pid_file: Path, conf: Path) -> int:
    """The pid in `pid_file` if that process is a dnsmasq started with `conf`, else 0."""
    try:
        pid = int(pid_file.read_text().strip() or "0")
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except (OSError, ValueError):
        return 0
    return pid if pid > 0 and f"--conf-file={conf}".encode() in cmdline else 0


def stop_node_dns(root: Path, node: str) -> None:
    """Cleans up after a node whose agent was killed (tests): ends its dnsmasq, by the pid in
    its pid file, removes the route the agent added and the node's directory."""
    directory, conf, pid_file, _ = layout(root, node)
    pid = _owned_pid(pid_file, conf)
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


def _running(pid: int) -> bool:
    """Whether the process exists and has not ended (a zombie has: its sockets are closed)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(") ", 1)[1][0] != "Z"
    except (OSError, IndexError):
        return False


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
    ) -> None:
        directory, conf, pid_file, hosts_dir = layout(root, node)
        self._dir, self._conf, self._pid_file, self._hosts_dir = (
            directory,
            conf,
            pid_file,
            hosts_dir,
        )
        self._route_marker = directory / "route"
        self._srv_file = directory / "srv.conf"
        self._config = DnsmasqConfig(
            node, address, domain, hosts_dir, pid_file, srv_file=self._srv_file
        )
        self._binary = binary
        # The first wait before restarting a dnsmasq that exited (doubled up to 30 s).
        self._backoff = backoff
        self._proc: asyncio.subprocess.Process | None = None
        self._last_words = ""
        self._stopping = False
        self._hosts = ""
        self._srv = ""
        # A dnsmasq ended on purpose (to read new SRV records): `run` does not restart it.
        self._replaced: asyncio.subprocess.Process | None = None
        self._restarts: set[asyncio.Task[None]] = set()
        self._restart_lock = asyncio.Lock()
        # How often dnsmasq was restarted for new SRV records (tests, logs).
        self.srv_restarts = 0

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
        await self._spawn()

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
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
        # Its pid file goes first, its socket last: wait for the process itself.
        deadline = time.monotonic() + 3.0
        while _running(pid) and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        if _running(pid):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
            while _running(pid) and time.monotonic() < deadline + 2.0:
                await asyncio.sleep(0.05)

    async def _spawn(self) -> None:
        with contextlib.suppress(FileNotFoundError):
            self._pid_file.unlink()
        try:
            proc = await asyncio.create_subprocess_exec(
                self._binary,
                "--keep-in-foreground",
                f"--conf-file={self._conf}",
                "--log-facility=-",
                stdin=asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.DEVNULL,
                stderr=asyncio.subprocess.PIPE,
                start_new_session=True,
            )
        except OSError as exc:
            raise DnsStartError(f"cannot run {self._binary}: {exc.strerror or exc}") from None
        self._proc = proc
        asyncio.get_running_loop().create_task(self._relay(proc))
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if proc.returncode is not None:
                break
            if _owned_pid(self._pid_file, self._conf) == proc.pid:
                log.info("cluster DNS for pods on %s:53 (%s)", self.address, self.domain)
                return
            await asyncio.sleep(0.05)
        await asyncio.sleep(0.1)  # its last words
        raise DnsStartError(
            f"dnsmasq did not start on {self.address}:53: {self._last_words or 'no answer'}"
        )

    async def _relay(self, proc: asyncio.subprocess.Process) -> None:
        """dnsmasq's log lines into the agent's log; the last one says why it stopped."""
        if proc.stderr is None:
            return
        async for raw in proc.stderr:
            line = raw.decode(errors="replace").strip()
            if line:
                self._last_words = line
                log.info("%s", line)

    def update(self, names: Iterable[DnsName], srv: Iterable[SrvRecord] = ()) -> None:
        """Writes the names for dnsmasq when they changed (it re-reads the file itself), and
        the SRV records, restarting dnsmasq when those changed (it reads them at start)."""
        text = render_hosts(names, self.domain)
        if text != self._hosts:
            write_atomic(self._hosts_dir / "cluster", text.encode(), 0o644)
            self._hosts = text
        records = render_srv(srv, self.domain)
        if records != self._srv:
            write_atomic(self._srv_file, records.encode(), 0o644)
            self._srv = records
            if self._proc is not None:
                task = asyncio.get_running_loop().create_task(self._restart_for_srv())
                self._restarts.add(task)
                task.add_done_callback(self._restarts.discard)

    async def _restart_for_srv(self) -> None:
        """A new dnsmasq on the new SRV records. The old one ends first (both cannot bind
        port 53); the gap is the new one's start, tens of milliseconds, and a pod's
        resolver asks again. Restarts queue behind each other; the last reads the newest."""
        async with self._restart_lock:
            old = self._proc
            if self._stopping or old is None:
                return
            self._replaced = old
            if old.returncode is None:
                with contextlib.suppress(ProcessLookupError):
                    old.terminate()
                await old.wait()
            try:
                await self._spawn()
                self.srv_restarts += 1
                log.info("dnsmasq restarted to serve new SRV records")
            except DnsStartError as exc:
                log.warning("%s", exc)
                # `run` sees the old one ended and keeps trying, with its backoff.
                self._replaced = None

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
            if proc is self._replaced:
                # Ended on purpose for new SRV records: wait for its successor.
                while self._proc is proc and self._replaced is proc and not self._stopping:
                    await asyncio.sleep(0.05)
                continue
            log.warning(
                "dnsmasq exited with %s (%s); restarting in %.0fs", code, self._last_words, backoff
            )
            await asyncio.sleep(backoff)
            quiet = time.monotonic() - started > 60
            backoff = self._backoff if quiet else min(2 * backoff, RESTART_BACKOFF_MAX)
            try:
                await self._spawn()
            except DnsStartError as exc:
                log.warning("%s", exc)
            except Exception:
                log.exception("restarting dnsmasq failed; trying again")

    async def stop(self) -> None:
        """Ends dnsmasq and removes the route this agent added (the names file stays)."""
        self._stopping = True
        proc = self._proc
        if proc is not None and proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                proc.terminate()
            try:
                await asyncio.wait_for(proc.wait(), 3.0)
            except TimeoutError:
                with contextlib.suppress(ProcessLookupError):
                    proc.kill()
                await proc.wait()
        if self._route_marker.exists():
            failed = await _run(
                "ip", "route", "del", "local", f"{self.address}/32", "dev", "lo", "table", "local"
            )
            if failed and "No such process" not in failed:
                log.warning("could not remove the route to %s: %s", self.address, failed)
            with contextlib.suppress(FileNotFoundError):
                self._route_marker.unlink()
