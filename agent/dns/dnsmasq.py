"""A dnsmasq process: start it in the foreground, know when it has bound, find it by its pid file.

Shared by the node's dnsmasq (agent/dns/server.py) and the SRV records' own
(agent/dns/srvdns.py). dnsmasq writes its pid file once its sockets are bound, so "bound"
is "the pid file names this process"; a pid file is trusted only when that process is a
dnsmasq started with the config beside it (a pid reused by another process is not ours).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import time
from collections.abc import Callable
from pathlib import Path

log = logging.getLogger(__name__)


def owned_pid(pid_file: Path, conf: Path) -> int:
    """The pid in `pid_file` if that process is a dnsmasq started with `conf`, else 0."""
    try:
        pid = int(pid_file.read_text().strip() or "0")
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except (OSError, ValueError):
        return 0
    return pid if pid > 0 and f"--conf-file={conf}".encode() in cmdline else 0


def running(pid: int) -> bool:
    """Whether the process exists and has not ended (a zombie has: its sockets are closed)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(") ", 1)[1][0] != "Z"
    except (OSError, IndexError):
        return False


async def launch(binary: str, conf: Path) -> asyncio.subprocess.Process:
    """dnsmasq in the foreground on `conf`, its log on stderr (raises OSError)."""
    return await asyncio.create_subprocess_exec(
        binary,
        "--keep-in-foreground",
        f"--conf-file={conf}",
        "--log-facility=-",
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
        start_new_session=True,
    )


async def relay(proc: asyncio.subprocess.Process, said: Callable[[str], None]) -> None:
    """dnsmasq's log lines into the agent's log; `said` hears each (the last says why it
    stopped)."""
    if proc.stderr is None:
        return
    async for raw in proc.stderr:
        line = raw.decode(errors="replace").strip()
        if line:
            said(line)
            log.info("%s", line)


async def bound(proc: asyncio.subprocess.Process, pid_file: Path, conf: Path, wait: float) -> bool:
    """Waits until `proc` has bound its sockets (True) or died or `wait` s passed (False)."""
    deadline = time.monotonic() + wait
    while time.monotonic() < deadline:
        if proc.returncode is not None:
            return False
        if owned_pid(pid_file, conf) == proc.pid:
            return True
        await asyncio.sleep(0.02)
    return False


async def stop_pid(pid: int, wait: float = 3.0) -> None:
    """SIGTERM, then SIGKILL after `wait` s; returns once the process is gone."""
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGTERM)
    # Its pid file goes first, its socket last: wait for the process itself.
    deadline = time.monotonic() + wait
    while running(pid) and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
    if running(pid):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
        while running(pid) and time.monotonic() < deadline + 2.0:
            await asyncio.sleep(0.05)


async def end(proc: asyncio.subprocess.Process, wait: float = 3.0) -> None:
    """Ends a dnsmasq this agent started (SIGTERM, SIGKILL after `wait` s)."""
    if proc.returncode is None:
        with contextlib.suppress(ProcessLookupError):
            proc.terminate()
        try:
            await asyncio.wait_for(proc.wait(), wait)
        except TimeoutError:
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
            await proc.wait()
