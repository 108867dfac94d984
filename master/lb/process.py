"""The HAProxy process of one data dir: started detached, found again, stopped by its PID.

The load balancer is the cluster's data plane, so it must not live and die with the master:
HAProxy runs in its own session (setsid: no signal to the master's process group reaches it,
and it is the leader of its own process group, which its workers share), and everything it
needs lives in `DATA_DIR/lb/`: haproxy.cfg, the master CLI socket, the stats (Runtime API)
socket, the pid file, its log and the slot table the driver last applied (state.json).
A master that starts finds the running HAProxy through the pid file (checked against
/proc/PID/cmdline, so a recycled PID is never mistaken for it) and adopts it.

Unix socket paths are limited to 107 bytes, and data dirs can be deep. HAProxy therefore runs
with its working directory in `DATA_DIR/lb/` and binds its sockets by relative name
(`unix@master.sock`); the master reaches them by their absolute path when that fits, else
through /proc/self/fd/N/NAME, N being a directory descriptor it holds open (`SocketDir`).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import time
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from kernel.processes import pid_alive as pid_alive
from kernel.processes import read_pid_file
from kernel.processes import runs_config as runs_config

# sun_path is 108 bytes on Linux, including the terminating NUL.
MAX_SOCKET_PATH = 107
MASTER_SOCKET = "master.sock"
RUNTIME_SOCKET = "runtime.sock"


@dataclass(frozen=True, slots=True)
class LbPaths:
    """The runtime files of one load balancer, all in `workdir` (DATA_DIR/lb)."""

    workdir: Path

    def __post_init__(self) -> None:
        # HAProxy runs, and checks its config, from this folder: a relative path (a master
        # given a relative --data-dir, as `make demo-local` does) was looked for inside the
        # folder itself, and the load balancer never started.
        object.__setattr__(self, "workdir", self.workdir.absolute())

    @property
    def config(self) -> Path:
        return self.workdir / "haproxy.cfg"

    @property
    def pidfile(self) -> Path:
        return self.workdir / "haproxy.pid"

    @property
    def log(self) -> Path:
        return self.workdir / "haproxy.log"

    @property
    def state(self) -> Path:
        return self.workdir / "state.json"

    @property
    def master_socket(self) -> Path:
        return self.workdir / MASTER_SOCKET

    @property
    def runtime_socket(self) -> Path:
        return self.workdir / RUNTIME_SOCKET


class SocketDir:
    """Connectable addresses for sockets in one directory, however long its path."""

    def __init__(self, workdir: Path) -> None:
        self._workdir = workdir
        self._fd: int | None = None

    def address(self, name: str) -> str:
        path = str(self._workdir / name)
        if len(path.encode()) <= MAX_SOCKET_PATH:
            return path
        if self._fd is None:
            self._fd = os.open(self._workdir, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
        return f"/proc/self/fd/{self._fd}/{name}"

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


def find_running(paths: LbPaths) -> int | None:
    """The PID of the HAProxy master serving this data dir, if one runs (blocks for a moment
    while HAProxy rewrites its pid file: see read_pid_file)."""
    return read_pid_file(paths.pidfile, paths.config)


def group_members(pgid: int) -> list[int]:
    """Live processes of process group `pgid` (HAProxy's master and its workers)."""
    members = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        # After ")": state, ppid, pgrp, ...
        if fields[0] != "Z" and int(fields[2]) == pgid:
            members.append(int(entry.name))
    return members


async def spawn(haproxy_bin: str, paths: LbPaths, log: IO[bytes]) -> asyncio.subprocess.Process:
    """Start HAProxy (master-worker) detached from the calling process."""
    return await asyncio.create_subprocess_exec(
        haproxy_bin,
        "-W",
        "-S",
        f"unix@{MASTER_SOCKET},mode,600",
        "-p",
        str(paths.pidfile),
        "-f",
        str(paths.config),
        cwd=paths.workdir,
        start_new_session=True,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=log,
        stderr=log,
    )


def signal_group(pid: int, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, sig)


def ours_in_group(pid: int, config: Path) -> list[int]:
    """The processes of HAProxy's group `pid` that run `config` (master first, then workers)."""
    members = [m for m in group_members(pid) if runs_config(m, config)]
    return sorted(members, key=lambda m: m != pid)


def _signal_each(pids: list[int], sig: int) -> None:
    for pid in pids:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, sig)


def stop_group(pid: int, config: Path, timeout: float = 10.0) -> bool:
    """Stop the HAProxy whose master is `pid`, and its workers, each by PID.

    SIGTERM first (HAProxy stops its workers), SIGKILL to whatever is left at the deadline.
    Only processes of its group that run `config` are signalled (a PID may be recycled).
    Returns False when none was running.
    """
    members = ours_in_group(pid, config)
    if not members:
        return False
    _signal_each(members, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while ours_in_group(pid, config) and time.monotonic() < deadline:
        time.sleep(0.02)
    left = ours_in_group(pid, config)
    if left:
        _signal_each(left, signal.SIGKILL)
        deadline = time.monotonic() + 5.0
        while ours_in_group(pid, config) and time.monotonic() < deadline:
            time.sleep(0.02)
    return True


def remove_runtime_files(paths: LbPaths) -> None:
    """What a stopped HAProxy leaves: its sockets and pid file (config and log stay)."""
    for path in (paths.master_socket, paths.runtime_socket, paths.pidfile, paths.state):
        path.unlink(missing_ok=True)


def stop_running(workdir: Path) -> int | None:
    """`pinnace lb stop`: stop the HAProxy serving this LB dir; its PID, or None if none ran."""
    paths = LbPaths(workdir)
    pid = find_running(paths)
    if pid is None:
        return None
    stop_group(pid, paths.config)
    remove_runtime_files(paths)
    return pid
