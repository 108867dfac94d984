"""The HAProxy driver: the one place that owns the haproxy process and talks to its sockets.

State flows one way: `apply(services)` asks `plan_runtime` how to get from the slot table HAProxy
holds (`self.state`) to the one wanted, then either sends the planned Runtime API commands or
renders a new config, validates it with `haproxy -c`, and reloads through the master CLI. HAProxy
runs in master-worker mode (`-W -S master.sock`); a reload starts a new worker that inherits the
listening sockets (`expose-fd listeners`), so clients never see a refused connection, while the
old worker finishes its connections. Only after HAProxy has taken the change does the driver adopt
the plan's state, so a failed apply leaves `self.state` describing what HAProxy really runs.
Calls are serialised by a lock: the master's controllers may call apply() from several tasks.

The process outlives the master (process.py): `start()` adopts an HAProxy already serving this
data dir, reading its slot table back (adopt.py), and only starts one when none runs; `close()`
leaves it serving, `stop()` ends it. After every change HAProxy took, the slot table is saved to
state.json so the next master knows what runs.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from pathlib import Path
from typing import IO, TypeVar

from kernel.files import write_atomic
from master.lb.adopt import (
    adopt_state,
    decode_state,
    encode_state,
    parse_show_servers_state,
    settings_fingerprint,
)
from master.lb.ingress_tls import default_certificate_pem
from master.lb.listeners import added_listeners, held_elsewhere
from master.lb.model import IngressFrontend, LbService, LbSettings, LbState
from master.lb.plan import plan_runtime, post_reload_commands
from master.lb.process import (
    MASTER_SOCKET,
    RUNTIME_SOCKET,
    LbPaths,
    SocketDir,
    find_running,
    pid_alive,
    remove_runtime_files,
    runs_config,
    signal_group,
    spawn,
    stop_group,
)
from master.lb.render import render_state
from master.lb.render_ingress import CERT_LIST, CERTS_DIR, DEFAULT_CERT, render_cert_list
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

# HAProxy runs in the LB dir and binds its sockets by relative name (see process.py).
_STATS_SOCKET = f"unix@{RUNTIME_SOCKET}"

__all__ = ["HAProxyDriver", "pid_alive"]


class HAProxyDriver:
    """Runs (or adopts) the HAProxy of one LB dir (DATA_DIR/lb) and programs it."""

    def __init__(
        self,
        workdir: Path,
        settings: LbSettings,
        haproxy_bin: str = "haproxy",
        *,
        ready_timeout: float = 10.0,
    ) -> None:
        self._paths = LbPaths(workdir)
        self._sockets = SocketDir(self._paths.workdir)
        self._settings = settings
        self._bin = haproxy_bin
        self._ready_timeout = ready_timeout
        self.config_path = self._paths.config
        self.runtime_socket = self._paths.runtime_socket
        self.master_socket = self._paths.master_socket
        self.log_path = self._paths.log
        self._state = LbState()
        self._proc: asyncio.subprocess.Process | None = None  # set when we started it
        self._pid: int | None = None  # the HAProxy master, started or adopted
        self._log_file: IO[bytes] | None = None
        self._lock = asyncio.Lock()

    @property
    def state(self) -> LbState:
        """The slot table HAProxy currently holds."""
        return self._state

    @property
    def pid(self) -> int | None:
        """PID of the HAProxy master process, while it runs."""
        return self._pid

    @property
    def adopted(self) -> bool:
        """True when this driver found HAProxy running rather than starting it."""
        return self._pid is not None and self._proc is None

    async def start(self) -> None:
        """Adopt the HAProxy serving this LB dir, or start one; return once it answers."""
        async with self._lock:
            if self._pid is not None:
                raise HAProxyError("HAProxy is already running")
            self._paths.workdir.mkdir(parents=True, exist_ok=True)
            running = await asyncio.to_thread(find_running, self._paths)
            if running is not None:
                try:
                    await self._adopt(running)
                    return
                except (HAProxyError, OSError, TimeoutError, ValueError) as err:
                    log.error(
                        "the running HAProxy (pid %d) does not answer: %s; replacing it",
                        running,
                        err,
                    )
                    await asyncio.to_thread(stop_group, running, self.config_path)
                    self._pid = None
            await self._start_new()

    async def _adopt(self, pid: int) -> None:
        """Take over a running HAProxy: read what it holds, change nothing."""
        self._pid = pid
        procs = await self._until(self._first_worker, "the running HAProxy to answer")
        await self._until(lambda: self._worker_answers(procs.workers[0]), "its worker")
        live = parse_show_servers_state(await self._send(RUNTIME_SOCKET, "show servers state"))
        saved = None
        with contextlib.suppress(OSError):
            saved = decode_state(self._paths.state.read_bytes())
        fingerprint_ok = saved is not None and saved[1] == self._fingerprint()
        self._state = adopt_state(saved[0] if saved else None, fingerprint_ok, live)
        self._log_file = self.log_path.open("ab")
        log.info(
            "adopted the running HAProxy (pid %d, %d backends%s)",
            pid,
            len(self._state.backends),
            "" if self._state.backends or not live else "; it will be reloaded",
        )

    async def _start_new(self) -> None:
        remove_runtime_files(self._paths)
        self._state = LbState()
        await self._write_config(self._state)
        self._log_file = self.log_path.open("ab")
        try:
            self._proc = await spawn(self._bin, self._paths, self._log_file)
            self._pid = self._proc.pid
            log.info("started haproxy master pid %d in %s", self._pid, self._paths.workdir)
            procs = await self._until(self._first_worker, "HAProxy to start")
            await self._until(lambda: self._worker_answers(procs.workers[0]), "worker")
            self._save_state()
        except BaseException:
            await self._stop_locked()
            raise

    async def apply(
        self,
        services: Sequence[LbService],
        ingress: IngressFrontend | None = None,
        pems: Mapping[str, bytes] | None = None,
    ) -> None:
        """Make HAProxy serve exactly `services` and `ingress` (whose certificates' PEM
        files are `pems`, by file name), without a reload whenever possible."""
        async with self._lock, timed(LB_PROGRAM, LB_FAILURES):
            self._require_running()
            plan = plan_runtime(
                self._state,
                services,
                min_slots=self._settings.slots_per_backend,
                ingress=ingress,
            )
            log.info("lb apply: %s (%d commands)", plan.reason, len(plan.commands))
            if plan.needs_reload:
                # A reload that fails to bind pauses every listener for a second (see
                # listeners.py): a port another process holds is refused before reloading.
                added = added_listeners(self._state, plan.state, self._settings.listen_address)
                held = await asyncio.to_thread(held_elsewhere, added)
                if held:
                    raise HAProxyError(f"{'; '.join(held)}; HAProxy was not reloaded")
                await asyncio.to_thread(self._write_certs, ingress, pems or {})
                await self._reload(plan.state)
                # HAProxy runs this config now, whatever becomes of the drain commands.
                self._state = plan.state
                self._save_state()
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
            self._save_state()

    async def stop(self) -> None:
        """Stop HAProxy (master and workers, by its process group) and remove its sockets."""
        async with self._lock:
            await self._stop_locked()

    async def close(self) -> None:
        """Let go of HAProxy and leave it serving (the master is going away)."""
        async with self._lock:
            if self._pid is not None:
                log.info("leaving HAProxy (pid %d) serving", self._pid)
            self._release()

    @property
    def running(self) -> bool:
        """False once the HAProxy master has exited (then stop() and start() again)."""
        if self._proc is not None:
            return self._proc.returncode is None
        return self._pid is not None and runs_config(self._pid, self.config_path)

    def listen_port(self, service: str, port_name: str) -> int:
        """The port HAProxy listens on for one service port."""
        backend = self._state.backend(service, port_name)
        if backend is None:
            raise KeyError(f"no load-balanced service port {service}/{port_name}")
        return backend.listen_port

    async def server_states(self) -> tuple[ServerStatus, ...]:
        """Every server slot as HAProxy reports it (`show stat`)."""
        self._require_running()
        return parse_show_stat(await self._send(RUNTIME_SOCKET, "show stat"))

    async def processes(self) -> ProcessList:
        """The master's view of its processes (`show proc`)."""
        self._require_running()
        return parse_show_proc(await self._send(MASTER_SOCKET, "show proc"))

    # -- internals ---------------------------------------------------------------------------

    def _require_running(self) -> None:
        if not self.running:
            raise HAProxyError(f"HAProxy is not running (see {self.log_path})")

    async def _send(self, socket_name: str, command: str, timeout: float = 5.0) -> str:
        return await send_command(self._sockets.address(socket_name), command, timeout)

    def _fingerprint(self) -> str:
        return settings_fingerprint(render_state(LbState(), self._settings, _STATS_SOCKET))

    def _save_state(self) -> None:
        """Record what HAProxy holds for the next master; losing it only costs a reload."""
        try:
            write_atomic(self._paths.state, encode_state(self._state, self._fingerprint()))
        except OSError as err:
            log.warning("could not save the load balancer's state: %s", err)

    def _write_certs(self, ingress: IngressFrontend | None, pems: Mapping[str, bytes]) -> None:
        """The ingress certificates as HAProxy reads them: certs/<file> and certs.list, all
        0600 in a 0700 folder (they hold private keys); files no longer named are removed."""
        folder = self._paths.workdir / CERTS_DIR
        folder.mkdir(mode=0o700, exist_ok=True)
        os.chmod(folder, 0o700)
        wanted = {c.file for c in ingress.certs} if ingress is not None else set()
        if wanted:
            # Made once and kept (an adopted HAProxy serves the same one).
            default = folder / DEFAULT_CERT
            if not default.exists():
                write_atomic(default, default_certificate_pem(), 0o600)
        for name in sorted(wanted):
            if name not in pems:
                raise HAProxyError(f"no certificate content given for {name}")
            path = folder / name
            try:
                current = path.read_bytes()
            except OSError:
                current = b""
            if current != pems[name]:
                write_atomic(path, pems[name], 0o600)
        for stale in folder.iterdir():
            if stale.name not in wanted and stale.name != DEFAULT_CERT:
                stale.unlink(missing_ok=True)
        write_atomic(self._paths.workdir / CERT_LIST, render_cert_list(ingress).encode(), 0o600)

    async def _write_config(self, state: LbState) -> None:
        """Write the config for `state` next to the live one, validate it, then swap it in."""
        text = render_state(state, self._settings, _STATS_SOCKET)
        candidate = self.config_path.with_suffix(".cfg.new")
        candidate.write_text(text)
        check = await asyncio.create_subprocess_exec(
            self._bin,
            "-c",
            "-q",
            "-f",
            str(candidate),
            cwd=self._paths.workdir,
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
            await self._send(MASTER_SOCKET, "reload", timeout=2.0)

        async def reloaded() -> ProcessList | None:
            procs = parse_show_proc(await self._send(MASTER_SOCKET, "show proc", 1.0))
            if procs.failed_reloads > before.failed_reloads:
                raise HAProxyError(
                    f"HAProxy failed to reload: {self._alerts_since(log_offset)} "
                    f"(see {self.log_path})"
                )
            fresh = [pid for pid in procs.workers if pid not in before.workers]
            return procs if procs.reloads > before.reloads and fresh else None

        procs = await self._until(reloaded, "HAProxy to reload")
        new_worker = next(pid for pid in procs.workers if pid not in before.workers)
        # The new worker re-binds the runtime socket; until it has, the old worker answers.
        await self._until(lambda: self._worker_answers(new_worker), "the new worker")
        log.info("haproxy reloaded: worker %d replaces %s", new_worker, before.workers)

    async def _run(self, commands: Sequence[str]) -> None:
        for command in commands:
            check_answer(command, await self._send(RUNTIME_SOCKET, command))

    async def _first_worker(self) -> ProcessList | None:
        procs = parse_show_proc(await self._send(MASTER_SOCKET, "show proc", 1.0))
        return procs if procs.workers else None

    async def _worker_answers(self, pid: int) -> bool | None:
        answer = await self._send(RUNTIME_SOCKET, "show info", 1.0)
        return True if parse_show_info_pid(answer) == pid else None

    async def _until(self, probe: Callable[[], Awaitable[T | None]], what: str) -> T:
        """Poll `probe` until it returns a value; socket errors while HAProxy boots are normal."""
        deadline = time.monotonic() + self._ready_timeout
        last: Exception | None = None
        while True:
            if not self.running:
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
        pid, proc = self._pid, self._proc
        if pid is None:
            # Nothing started or adopted: in particular, leave the files of an HAProxy
            # another master left running alone, start() adopts it.
            self._release()
            return
        if proc is not None and proc.returncode is None:
            # Our child: signal the group, and wait() so no zombie is left behind.
            signal_group(pid, signal.SIGTERM)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(proc.wait(), 10.0)
        # Whatever is left of the group (workers of an adopted HAProxy, stuck ones).
        await asyncio.to_thread(stop_group, pid, self.config_path)
        if proc is not None and proc.returncode is None:
            signal_group(pid, signal.SIGKILL)
            await proc.wait()
        log.info("stopped HAProxy (pid %d)", pid)
        self._release()
        remove_runtime_files(self._paths)
        self._state = LbState()

    def _release(self) -> None:
        self._proc = None
        self._pid = None
        self._sockets.close()
        if self._log_file is not None:
            self._log_file.close()
            self._log_file = None
