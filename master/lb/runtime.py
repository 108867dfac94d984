"""Talk to HAProxy's Runtime API and master CLI over their unix sockets, and read their answers.

One command per connection: connect, send the line, half-close, read to EOF. The master CLI only
answers once the client has half-closed, the stats socket closes by itself; half-closing suits
both and leaves no session state to get wrong. The parsers are pure so they are unit tested on
captured output.
"""

from __future__ import annotations

import asyncio
import contextlib
import csv
import io
from dataclasses import dataclass
from pathlib import Path


class HAProxyError(Exception):
    """HAProxy refused a command, a config, or did not come up in time."""


class HAProxyAnswerError(HAProxyError):
    """An answer could not be read (e.g. cut short while HAProxy restarts); worth retrying."""


@dataclass(frozen=True, slots=True)
class ServerStatus:
    """One server slot as HAProxy reports it in `show stat`."""

    backend: str
    server: str
    address: str  # "ip:port" as HAProxy prints it
    status: str  # UP, DOWN, MAINT, DRAIN, NOLB, "no check", ...
    check_status: str  # L4OK, L4CON, ... or "" when not checked


@dataclass(frozen=True, slots=True)
class ProcessList:
    """`show proc` on the master CLI: the master's reload count and its current workers."""

    master_pid: int
    reloads: int
    failed_reloads: int
    workers: tuple[int, ...]
    old_workers: tuple[int, ...]


async def send_command(socket_path: Path | str, command: str, timeout: float = 5.0) -> str:
    """Send one command line and return HAProxy's full answer."""
    if "\n" in command or ";" in command:
        raise ValueError(f"one command per call, got {command!r}")

    async def exchange() -> str:
        reader, writer = await asyncio.open_unix_connection(str(socket_path))
        try:
            writer.write(command.encode() + b"\n")
            await writer.drain()
            if writer.can_write_eof():
                writer.write_eof()
            return (await reader.read()).decode(errors="replace")
        finally:
            writer.close()
            with contextlib.suppress(OSError):
                await writer.wait_closed()

    return await asyncio.wait_for(exchange(), timeout)


def check_answer(command: str, answer: str) -> None:
    """Raise HAProxyError unless `answer` is HAProxy's success reply to `command`."""
    text = answer.strip()
    if " addr " in command:
        # Success reads "IP changed from ..." or "no need to change the addr ...".
        if "changed" in text or "no need to change" in text:
            return
    elif not text:
        # State, health and enable/disable commands answer nothing on success.
        return
    raise HAProxyError(f"HAProxy refused {command!r}: {text or 'no answer'}")


def parse_show_stat(text: str) -> tuple[ServerStatus, ...]:
    """Server rows of `show stat` CSV (frontend and backend summary rows are skipped)."""
    lines = text.strip().splitlines()
    if not lines or not lines[0].startswith("# "):
        raise HAProxyAnswerError(f"unexpected 'show stat' answer: {text[:200]!r}")
    rows = csv.DictReader(io.StringIO("\n".join([lines[0][2:], *lines[1:]])))
    return tuple(
        ServerStatus(
            backend=row["pxname"],
            server=row["svname"],
            address=row.get("addr") or "",
            status=row["status"],
            check_status=row.get("check_status") or "",
        )
        for row in rows
        if row.get("type") == "2"
    )


def parse_show_info_pid(text: str) -> int:
    """The worker PID from `show info`."""
    for line in text.splitlines():
        name, _, value = line.partition(":")
        if name.strip() == "Pid":
            return int(value.strip())
    raise HAProxyAnswerError(f"no Pid in 'show info' answer: {text[:200]!r}")


def parse_show_proc(text: str) -> ProcessList:
    """Parse the master CLI's `show proc` table (HAProxy 2.6 layout)."""
    master_pid = reloads = failed = -1
    workers: list[int] = []
    old: list[int] = []
    section = "master"
    for raw in text.splitlines():
        line = raw.strip()
        if not line:
            continue
        if line.startswith("#"):
            if line.startswith("# workers"):
                section = "workers"
            elif line.startswith("# old workers"):
                section = "old"
            elif line.startswith("# programs"):
                section = "programs"
            continue
        fields = line.split()
        if section == "master" and len(fields) >= 3 and fields[1] == "master":
            master_pid, reloads = int(fields[0]), int(fields[2])
            if "[failed:" in line:
                failed = int(line.split("[failed:", 1)[1].split("]", 1)[0])
        elif section in ("workers", "old") and len(fields) >= 2 and fields[1] == "worker":
            (workers if section == "workers" else old).append(int(fields[0]))
    if master_pid < 0:
        raise HAProxyAnswerError(f"no master in 'show proc' answer: {text[:200]!r}")
    return ProcessList(master_pid, reloads, max(failed, 0), tuple(workers), tuple(old))
