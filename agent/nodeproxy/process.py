"""The node proxy's HAProxy process: started detached, reloaded hitlessly, adopted, stopped.

The proxy is the node's data plane, so it must not live and die with the agent:
HAProxy runs in master-worker mode as a daemon (`-W -D`: its own session, no
signal to the agent's process group reaches it), with everything in one folder
of the agent's state dir: haproxy.cfg, haproxy.pid. An agent that starts finds
it through the pid file (checked against /proc/PID/cmdline, so a recycled PID is
never taken for it) and adopts it; SIGUSR2 makes the master re-read the config
and start new workers while the old ones finish their connections (hitless).
A config is checked (`haproxy -c`) before it replaces the running one, so a bad
one never reaches the proxy.

Blocking calls (subprocess, the waits in `stop`): the shell runs them in a thread.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from kernel.files import write_atomic
from kernel.processes import pid_alive as pid_alive
from kernel.processes import runs_config as runs_config


class ProxyError(RuntimeError):
    """HAProxy refused to start or a config: one sentence with its own words."""


@dataclass(frozen=True, slots=True)
class ProxyPaths:
    workdir: Path

    @property
    def config(self) -> Path:
        return self.workdir / "haproxy.cfg"

    @property
    def candidate(self) -> Path:
        return self.workdir / "haproxy.cfg.new"

    @property
    def pidfile(self) -> Path:
        return self.workdir / "haproxy.pid"


def find_running(paths: ProxyPaths) -> int | None:
    """The PID of the HAProxy master serving this folder's config, if one runs."""
    try:
        pid = int(paths.pidfile.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None
    return pid if runs_config(pid, paths.config) else None


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
        [binary, "-W", "-D", "-p", str(paths.pidfile), "-f", str(paths.config)],
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


def reload(pid: int) -> None:
    """Hitless: the master starts workers on the new config; old ones finish their connections."""
    os.kill(pid, signal.SIGUSR2)


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
