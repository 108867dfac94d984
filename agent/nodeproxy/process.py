"""The node proxy's HAProxy process: started detached, reloaded hitlessly, adopted, stopped.

The proxy is the node's data plane, so it must not live and die with the agent:
HAProxy runs in master-worker mode as a daemon (`-W -D`: its own session, no
signal to the agent's process group reaches it), with everything in one folder
of the agent's state dir: haproxy.cfg, haproxy.pid, master.sock (the master CLI:
`show proc` says whether a reload worked) and admin.sock (the Runtime API the
endpoint changes go through). An agent that starts finds
it through the pid file (checked against /proc/PID/cmdline, so a recycled PID is
never taken for it) and adopts it; SIGUSR2 makes the master re-read the config
and start new workers while the old ones finish their connections (hitless).
A config is checked (`haproxy -c`) before it replaces the running one, so a bad
one never reaches the proxy; a reload is then confirmed on the master CLI (a new
worker, no failed reload), so a listener HAProxy could not bind is noticed at once
(the old workers go on serving the old config meanwhile).

Blocking calls (subprocess, the waits in `stop`): the shell runs them in a thread.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from agent.nodeproxy.render import ADMIN_SOCKET
from kernel.files import write_atomic
from kernel.processes import pid_alive as pid_alive
from kernel.processes import read_pid_file
from kernel.processes import runs_config as runs_config


class ProxyError(RuntimeError):
    """HAProxy refused to start or a config: one sentence with its own words."""


@dataclass(frozen=True, slots=True)
class ProxyPaths:
    workdir: Path

    def __post_init__(self) -> None:
        # HAProxy runs, and checks its config, from this folder: a relative path (an agent
        # given a relative --state-dir, as `make demo-local` does) was looked for inside
        # the folder itself, and the node proxy never started ("no message": `-c -q`).
        object.__setattr__(self, "workdir", self.workdir.absolute())

    @property
    def config(self) -> Path:
        return self.workdir / "haproxy.cfg"

    @property
    def candidate(self) -> Path:
        return self.workdir / "haproxy.cfg.new"

    @property
    def pidfile(self) -> Path:
        return self.workdir / "haproxy.pid"

    @property
    def master_socket(self) -> Path:
        return self.workdir / MASTER_SOCKET

    @property
    def admin_socket(self) -> Path:
        return self.workdir / ADMIN_SOCKET


MASTER_SOCKET = "master.sock"
# sun_path holds 107 bytes and a NUL; a longer path is reached through /proc/self/fd.
MAX_SOCKET_PATH = 107


def find_running(paths: ProxyPaths) -> int | None:
    """The PID of the HAProxy master serving this folder's config, if one runs (blocks for a
    moment while HAProxy rewrites its pid file: see read_pid_file)."""
    return read_pid_file(paths.pidfile, paths.config)


def _last_lines(text: str, count: int = 3) -> str:
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    return " / ".join(lines[-count:]) or "no message"


def check_config(binary: str, path: Path) -> None:
    """Raises ProxyError when HAProxy would refuse the config at `path` (run from its folder,
    as HAProxy itself runs: the config names its socket relative to it)."""
    done = subprocess.run(
        [binary, "-c", "-q", "-f", str(path)],
        capture_output=True,
        text=True,
        timeout=30,
        cwd=path.parent,
    )
    if done.returncode != 0:
        raise ProxyError(f"HAProxy refuses the node proxy config: {_last_lines(done.stderr)}")


def install(binary: str, paths: ProxyPaths, text: str) -> None:
    """Check `text` as a config, then make it the one HAProxy runs from."""
    write_atomic(paths.candidate, text.encode(), 0o644)
    check_config(binary, paths.candidate)
    paths.candidate.replace(paths.config)


def start(binary: str, paths: ProxyPaths) -> int:
    """Start HAProxy on the installed config, detached; its master's PID."""
    done = subprocess.run(
        [
            *(binary, "-W", "-D", "-S", f"unix@{MASTER_SOCKET},mode,600"),
            *("-p", str(paths.pidfile), "-f", str(paths.config)),
        ],
        cwd=paths.workdir,
        capture_output=True,
        text=True,
        timeout=30,
        start_new_session=True,
        stdin=subprocess.DEVNULL,
    )
    if done.returncode != 0:
        raise ProxyError(f"the node proxy (HAProxy) did not start: {_last_lines(done.stderr)}")
    deadline = time.monotonic() + 5.0
    while time.monotonic() < deadline:
        pid = find_running(paths)
        if pid is not None:
            return pid
        time.sleep(0.02)
    raise ProxyError("the node proxy (HAProxy) started but wrote no pid file within 5 s")


def reload(pid: int, paths: ProxyPaths, timeout: float = 10.0) -> None:
    """Hitless: the master starts workers on the new config; old ones finish their connections.
    Returns once a new worker serves it and answers on the admin socket; raises ProxyError
    when HAProxy says the reload failed (the old workers then still serve the old config)."""
    if not paths.master_socket.exists():
        # Started by an agent from before the master CLI: reload blind, as it did.
        os.kill(pid, signal.SIGUSR2)
        return
    before = _procs(paths, timeout)
    os.kill(pid, signal.SIGUSR2)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        time.sleep(0.02)
        try:
            now = parse_show_proc(command(paths.master_socket, "show proc"))
        except (OSError, ValueError):
            continue  # the master re-executes itself on reload
        if now.failed > before.failed:
            raise ProxyError("HAProxy could not load the new node proxy config (a failed reload)")
        fresh = [w for w in now.workers if w not in before.workers]
        if now.reloads > before.reloads and fresh:
            _until_answers(paths, fresh[0], deadline)
            return
    raise ProxyError(f"the node proxy (HAProxy) did not reload within {timeout:.0f} s")


def _procs(paths: ProxyPaths, timeout: float) -> Procs:
    deadline = time.monotonic() + timeout
    while True:
        try:
            return parse_show_proc(command(paths.master_socket, "show proc"))
        except (OSError, ValueError) as e:
            if time.monotonic() >= deadline:
                raise ProxyError(f"the node proxy's master CLI does not answer: {e}") from None
            time.sleep(0.05)


def _until_answers(paths: ProxyPaths, worker: int, deadline: float) -> None:
    """Wait until `worker` has taken the admin socket over (runtime commands go to it)."""
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError, ValueError):
            if parse_info_pid(command(paths.admin_socket, "show info")) == worker:
                return
        time.sleep(0.02)
    raise ProxyError(f"the node proxy's new worker {worker} does not answer on its admin socket")


def run_commands(paths: ProxyPaths, commands: tuple[str, ...]) -> None:
    """Runtime API commands, in order; raises ProxyError on the first HAProxy refuses."""
    for line in commands:
        try:
            answer = command(paths.admin_socket, line).strip()
        except OSError as e:
            raise ProxyError(f"the node proxy's admin socket: {e}") from None
        # `set server ... addr` says what changed; state and health commands say nothing.
        if answer and "changed" not in answer and "no need to change" not in answer:
            raise ProxyError(f"HAProxy refused {line!r}: {answer}")


@dataclass(frozen=True, slots=True)
class Procs:
    """`show proc` on the master CLI: reloads so far, failed ones, and current workers."""

    reloads: int
    failed: int
    workers: tuple[int, ...]


def parse_show_proc(text: str) -> Procs:
    """The master row's reload counts and the current workers (HAProxy 2.6 layout)."""
    reloads = failed = -1
    workers = []
    section = "master"
    for line in text.splitlines():
        fields = line.split()
        if line.startswith("# "):  # "# workers", "# old workers", "# programs"
            section = "workers" if line.startswith("# workers") else "other"
        elif section == "master" and len(fields) >= 3 and fields[1] == "master":
            reloads = int(fields[2])
            if "[failed:" in line:
                failed = int(line.split("[failed:", 1)[1].split("]", 1)[0])
        elif section == "workers" and len(fields) >= 2 and fields[1] == "worker":
            workers.append(int(fields[0]))
    if reloads < 0:
        raise ValueError(f"no master row in 'show proc': {text[:200]!r}")
    return Procs(reloads, max(failed, 0), tuple(workers))


def parse_info_pid(text: str) -> int:
    for line in text.splitlines():
        name, _, value = line.partition(":")
        if name.strip() == "Pid":
            return int(value)
    raise ValueError(f"no Pid in 'show info': {text[:200]!r}")


def command(path: Path, line: str, timeout: float = 2.0) -> str:
    """One command on an HAProxy unix socket (master CLI or Runtime API), its whole answer."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(timeout)
        if len(str(path).encode()) <= MAX_SOCKET_PATH:
            sock.connect(str(path))
        else:
            folder = os.open(path.parent, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
            try:
                sock.connect(f"/proc/self/fd/{folder}/{path.name}")
            finally:
                os.close(folder)
        sock.sendall(line.encode() + b"\n")
        sock.shutdown(socket.SHUT_WR)
        chunks = []
        while chunk := sock.recv(65536):
            chunks.append(chunk)
    return b"".join(chunks).decode(errors="replace")


def stop(paths: ProxyPaths, timeout: float = 10.0) -> int | None:
    """Stop the HAProxy of this folder (its master stops its workers); its PID, or None."""
    pid = find_running(paths)
    if pid is None:
        paths.pidfile.unlink(missing_ok=True)
        return None
    children = _children(pid)
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and (pid_alive(pid) or any(map(pid_alive, children))):
        time.sleep(0.02)
    for left in [p for p in (pid, *children) if pid_alive(p)]:
        with contextlib.suppress(ProcessLookupError):
            os.kill(left, signal.SIGKILL)
    paths.pidfile.unlink(missing_ok=True)
    return pid


def _children(pid: int) -> list[int]:
    """The HAProxy master's workers (its child processes)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if int(fields[1]) == pid:
            found.append(int(entry.name))
    return found
