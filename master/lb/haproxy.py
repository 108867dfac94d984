"""The HAProxy driver: the one place that owns the haproxy process and talks to its sockets.

State flows one way: `apply(services)` asks `plan_runtime` how to get from the slot table HAProxy
holds (`self.state`) to the one wanted, then either sends the planned Runtime API commands or
renders a new config, validates it with `haproxy -c`, and reloads through the master CLI. HAProxy
runs in master-worker mode (`-W -S master.sock`); a reload starts a new worker that inherits the
listening sockets (`expose-fd listeners`), so clients never see a refused connection, while the
old worker finishes its connections. Only after HAProxy has taken the change does the driver adopt
the plan's state, so a failed apply leaves `self.state` describing what HAProxy really runs.
Calls are serialised by a lock: the master's controllers may call apply() from several tasks.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import shutil
import signal
import time
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import IO, TypeVar

from master.lb.model import LbService, LbSettings, LbState
from master.lb.plan import plan_runtime, post_reload_commands
from master.lb.render import render_state
from master.lb.runtime import (
    HAProxyAnswerError,
    HAProxyError,
    ProcessList,
    ServerStatus,
    check_answer,
    parse_show_info_pid,
    parse_show_proc,
    parse_show_stat,
    send_command,
)
from master.metrics.series import LB_FAILURES, LB_PROGRAM, timed

log = logging.getLogger(__name__)

T = TypeVar("T")

# sun_path is 108 bytes on Linux, including the terminating NUL.
_MAX_SOCKET_PATH = 107


def pid_alive(pid: int) -> bool:
    """True while `pid` is a live process (a zombie counts as gone)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    except OSError:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        return True
    # The state letter follows the command name in parentheses, which may contain spaces.
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def _die_with_parent() -> list[str]:
    """A command prefix that ends HAProxy when the master dies, even by kill -9.

    Otherwise a killed master would leave an HAProxy holding the service ports,
    and the restarted master could not bind them. `setpriv --pdeathsig` (util-linux)
    sets the signal in the child and execs HAProxy, so the master's own process
    never runs Python code between fork and exec (a preexec_fn would, which is
    unsafe in a process running gRPC's threads).
    """
    setpriv = shutil.which("setpriv")
    return [setpriv, "--pdeathsig", "TERM", "--"] if setpriv else []


class HAProxyDriver:
    """Runs one HAProxy (master-worker) in `workdir` and programs it."""

    def __init__(
        self,
        workdir: Path,
        settings: LbSettings,
        haproxy_bin: str = "haproxy",
        *,
        ready_timeout: float = 10.0,
    ) -> None:
        self._workdir = workdir
        self._settings = settings
        self._bin = haproxy_bin
        self._ready_timeout = ready_timeout
        self.config_path = workdir / "haproxy.cfg"
        self.runtime_socket = workdir / "runtime.sock"
        self.master_socket = workdir / "master.sock"
        self.log_path = workdir / "haproxy.log"
        self._state = LbState()
        self._proc: asyncio.subprocess.Process | None = None
        self._log_file: IO[bytes] | None = None
        self._workers: set[int] = set()  # every worker seen, so stop() can prove none is left
        self._lock = asyncio.Lock()

    @property
    def state(self) -> LbState:
        """The slot table HAProxy currently holds."""
        return self._state

    @property
    def pid(self) -> int | None:
        """PID of the HAProxy master process, while it runs."""
        return self._proc.pid if self._proc is not None else None

    async def start(self) -> None:
        """Write an empty config, validate it, start HAProxy and wait until it answers."""
        async with self._lock:
            if self._proc is not None:
                raise HAProxyError("HAProxy is already running")
            self._workdir.mkdir(parents=True, exist_ok=True)
            for sock in (self.runtime_socket, self.master_socket):
                if len(str(sock).encode()) > _MAX_SOCKET_PATH:
                    raise HAProxyError(f"socket path too long for a unix socket: {sock}")
                sock.unlink(missing_ok=True)
            self._state = LbState()
            await self._write_config(self._state)
            self._log_file = self.log_path.open("ab")
            try:
                self._proc = await asyncio.create_subprocess_exec(
                    *_die_with_parent(),
                    self._bin,
                    "-W",
                    "-S",
                    f"{self.master_socket},mode,600",
                    "-f",
                    str(self.config_path),
                    stdin=asyncio.subprocess.DEVNULL,
                    stdout=self._log_file,
                    stderr=self._log_file,
                )
                log.info("started haproxy master pid %d in %s", self._proc.pid, self._workdir)
                procs = await self._until(self._first_worker, "HAProxy to start")
                await self._until(lambda: self._worker_answers(procs.workers[0]), "worker")
            except BaseException:
                await self._stop_locked()
                raise

    async def apply(self, services: Sequence[LbService]) -> None:
        """Make HAProxy serve exactly `services`, without a reload whenever possible."""
        async with self._lock, timed(LB_PROGRAM, LB_FAILURES):
            self._require_running()
            plan = plan_runtime(self._state, services, min_slots=self._settings.slots_per_backend)
            log.info("lb apply: %s (%d commands)", plan.reason, len(plan.commands))
            if plan.needs_reload:
                await self._reload(plan.state)
                # HAProxy runs this config now, whatever becomes of the drain commands.
                self._state = plan.state
                await self._run(plan.commands)
                return
            try:
                await self._run(plan.commands)
            except (HAProxyError, OSError, TimeoutError) as err:
                # The runtime state is now partly changed; a reload from the full config is
                # the one way back to a state we know.
                log.warning("runtime update failed (%s); reloading instead", err)
                await self._reload(plan.state)
                await self._run(post_reload_commands(plan.state))
            self._state = plan.state

    async def stop(self) -> None:
        """Stop the HAProxy this driver started (master and workers) and remove its sockets."""
        async with self._lock:
            await self._stop_locked()

    @property
    def running(self) -> bool:
        """False once the HAProxy master has exited (then stop() and start() again)."""
        return self._proc is not None and self._proc.returncode is None

    def listen_port(self, service: str, port_name: str) -> int:
        """The port HAProxy listens on for one service port."""
        backend = self._state.backend(service, port_name)
        if backend is None:
            raise KeyError(f"no load-balanced service port {service}/{port_name}")
        return backend.listen_port

    async def server_states(self) -> tuple[ServerStatus, ...]:
        """Every server slot as HAProxy reports it (`show stat`)."""
        self._require_running()
        return parse_show_stat(await send_command(self.runtime_socket, "show stat"))

    async def processes(self) -> ProcessList:
        """The master's view of its processes (`show proc`)."""
        self._require_running()
        return parse_show_proc(await send_command(self.master_socket, "show proc"))

    # -- internals ---------------------------------------------------------------------------

    def _require_running(self) -> None:
        if not self.running:
            raise HAProxyError(f"HAProxy is not running (see {self.log_path})")

    async def _write_config(self, state: LbState) -> None:
        """Write the config for `state` next to the live one, validate it, then swap it in."""
        text = render_state(state, self._settings, self.runtime_socket)
        candidate = self.config_path.with_suffix(".cfg.new")
        candidate.write_text(text)
        check = await asyncio.create_subprocess_exec(
            self._bin,
            "-c",
            "-q",
            "-f",
            str(candidate),
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
        )
        output, _ = await check.communicate()
        if check.returncode != 0:
            raise HAProxyError(
                f"haproxy -c rejected {candidate}: {output.decode(errors='replace').strip()}"
            )
        os.replace(candidate, self.config_path)

    async def _reload(self, state: LbState) -> None:
        previous_config = self.config_path.read_text()
        await self._write_config(state)
        try:
            await self._reload_written()
        except BaseException:
            # Keep the file describing what the running worker serves, for operators and for
            # HAProxy itself should its master re-execute.
            self.config_path.write_text(previous_config)
            raise

    async def _reload_written(self) -> None:
        before = await self.processes()
        log_offset = self.log_path.stat().st_size
        # The master re-executes itself on reload and may drop this connection while doing so.
        with contextlib.suppress(OSError, TimeoutError):
            await send_command(self.master_socket, "reload", timeout=2.0)

        async def reloaded() -> ProcessList | None:
            procs = parse_show_proc(await send_command(self.master_socket, "show proc", 1.0))
            if procs.failed_reloads > before.failed_reloads:
                raise HAProxyError(
                    f"HAProxy failed to reload: {self._alerts_since(log_offset)} "
                    f"(see {self.log_path})"
                )
            fresh = [pid for pid in procs.workers if pid not in before.workers]
            return procs if procs.reloads > before.reloads and fresh else None

        procs = await self._until(reloaded, "HAProxy to reload")
        new_worker = next(pid for pid in procs.workers if pid not in before.workers)
        self._workers = {pid for pid in self._workers if self._ours(pid)} | set(procs.workers)
        # The new worker re-binds the runtime socket; until it has, the old worker answers.
        await self._until(lambda: self._worker_answers(new_worker), "the new worker")
        log.info("haproxy reloaded: worker %d replaces %s", new_worker, before.workers)

    async def _run(self, commands: Sequence[str]) -> None:
        for command in commands:
            check_answer(command, await send_command(self.runtime_socket, command))

    async def _first_worker(self) -> ProcessList | None:
        procs = parse_show_proc(await send_command(self.master_socket, "show proc", 1.0))
        self._workers.update(procs.workers)
        return procs if procs.workers else None

    async def _worker_answers(self, pid: int) -> bool | None:
        answer = await send_command(self.runtime_socket, "show info", 1.0)
        return True if parse_show_info_pid(answer) == pid else None

    async def _until(self, probe: Callable[[], Awaitable[T | None]], what: str) -> T:
        """Poll `probe` until it returns a value; socket errors while HAProxy boots are normal."""
        deadline = time.monotonic() + self._ready_timeout
        last: Exception | None = None
        while True:
            if self._proc is None or self._proc.returncode is not None:
                raise HAProxyError(f"HAProxy exited while waiting for {what}: {self._log_tail()}")
            try:
                result = await probe()
                if result is not None:
                    return result
            except (OSError, TimeoutError, HAProxyAnswerError) as err:
                last = err
            if time.monotonic() >= deadline:
                raise HAProxyError(f"timed out waiting for {what} (last error: {last})")
            await asyncio.sleep(0.02)

    def _alerts_since(self, offset: int) -> str:
        try:
            with self.log_path.open("rb") as f:
                f.seek(offset)
                text = f.read().decode(errors="replace")
        except OSError:
            return "(no log)"
        alerts = [line.split(":", 1)[-1].strip() for line in text.splitlines() if "[ALERT]" in line]
        return "; ".join(alerts) or "no alert logged"

    def _log_tail(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-2000:].strip()
        except OSError:
            return "(no log)"

    async def _stop_locked(self) -> None:
        proc, self._proc = self._proc, None
        if proc is not None:
            if proc.returncode is None:
                with contextlib.suppress(OSError, TimeoutError, HAProxyError, ValueError):
                    procs = parse_show_proc(
                        await send_command(self.master_socket, "show proc", 1.0)
                    )
                    self._workers.update(procs.workers + procs.old_workers)
                proc.send_signal(signal.SIGTERM)
                try:
                    await asyncio.wait_for(proc.wait(), 10.0)
                except TimeoutError:
                    proc.kill()
                    await proc.wait()
            await self._reap_workers()
        if self._log_file is not None:
            self._log_file.close()
            self._log_file = None
        for sock in (self.runtime_socket, self.master_socket):
            sock.unlink(missing_ok=True)
        self._state = LbState()

    def _ours(self, pid: int) -> bool:
        """True while `pid` is a live HAProxy process of this driver.

        Worker PIDs are remembered across reloads, and an exited worker's PID may since belong
        to someone else: only a process running our config file is ours.
        """
        if not pid_alive(pid):
            return False
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        except OSError:
            return False
        return str(self.config_path).encode() in cmdline

    async def _reap_workers(self) -> None:
        """Workers exit when their master does; kill by PID any that has not within 5 s."""
        deadline = time.monotonic() + 5.0
        while any(self._ours(pid) for pid in self._workers) and time.monotonic() < deadline:
            await asyncio.sleep(0.02)
        for pid in self._workers:
            if self._ours(pid):
                log.warning("haproxy worker %d outlived its master; killing it", pid)
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
        self._workers.clear()
