"""How long pods' DNS goes unanswered while the node's dnsmasq takes new SRV records.

dnsmasq reads SRV records (`srv-host=`) only at start: the agent's DnsServer
(agent/dns/server.py) restarted the node's dnsmasq for each change (41-61 ms unanswered,
median at load 23), and now starts a new SRV dnsmasq the node's forwards to
(agent/dns/srvdns.py) and tells the node's with SIGHUP. This bench runs the real
DnsServer with the real dnsmasq on 127.0.0.1 at a free port, asks it for a Service's
A record every millisecond from a thread (a plain UDP query; a reply counts when it
carries an answer), changes the SRV records `--changes` times a second apart, and
reports per change the gap: the longest time between two answered queries around it
(the quiet baseline beside it: the same measure over the second before the change).

    .venv/bin/python -m tests.bench.dns_srv_gap --changes 10

Needs dnsmasq (root, as the agent). Every dnsmasq it starts is stopped by the
DnsServer; its folder is removed.
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import os
import socket
import statistics
import struct
import tempfile
import time
from pathlib import Path
from typing import Any

from agent.dns.render import DnsName, SrvRecord
from agent.dns.server import DnsServer
from tests.bench.results import Figure, load_average, record, table

NAME = "web.default.svc.cluster.local"


def _query(qid: int, name: str, qtype: int = 1) -> bytes:
    """A minimal DNS query for `name` (A unless `qtype` says; recursion desired)."""
    labels = b"".join(bytes([len(p)]) + p.encode() for p in name.split("."))
    header = struct.pack(">HHHHHH", qid, 0x0100, 1, 0, 0, 0)
    return header + labels + b"\0" + struct.pack(">HH", qtype, 1)


def _srv_names(port: int, wanted: int) -> bool:
    """Whether web's SRV record names port `wanted` now (so the figure is of changes that
    happened: the port's two bytes follow the record's priority 0 and weight 100)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.settimeout(1.0)
        s.sendto(_query(1, "_http._tcp." + NAME, 33), ("127.0.0.1", port))
        try:
            reply = s.recv(512)
        except OSError:
            return False
    return struct.pack(">HHH", 0, 100, wanted) in reply


def _answered(reply: bytes, qid: int) -> bool:
    """Same id, no error, at least one answer."""
    if len(reply) < 12:
        return False
    rid, flags, _, ancount = struct.unpack(">HHHH", reply[:8])
    return bool(rid == qid and flags & 0xF == 0 and ancount > 0)


def ask(port: int, stopping: Any, out: Any, interval: float = 0.001) -> None:
    """Asks every `interval` s until `stopping` is set; sends (time sent, answered) of every
    query (a process of its own: a thread beside the agent's event loop measured its own
    starvation)."""
    asked: list[tuple[float, bool]] = []
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.settimeout(0.02)
        qid = 0
        while not stopping.is_set():
            qid = (qid + 1) & 0xFFFF
            start = time.monotonic()
            s.sendto(_query(qid, NAME), ("127.0.0.1", port))
            ok = False
            try:
                while not ok:
                    ok = _answered(s.recv(512), qid)
            except OSError:  # refused (no dnsmasq bound) or no answer within 20 ms
                pass
            asked.append((start, ok))
            rest = interval - (time.monotonic() - start)
            if rest > 0:
                time.sleep(rest)
    out.send(asked)


def outage(asked: list[tuple[float, bool]], start: float, end: float) -> float:
    """From the first query in [start, end] left unanswered to the first answered after
    it (0 when every query there was answered). A stall of the asker itself (the machine
    is loaded) fails no query, so it does not count, unlike the longest gap between
    answers, which measured the scheduler (60 ms at load 25 with nothing changing)."""
    inside = [(t, ok) for t, ok in asked if start <= t <= end]
    failed = next((t for t, ok in inside if not ok), None)
    if failed is None:
        return 0.0
    back = next((t for t, ok in inside if ok and t > failed), end)
    return back - failed


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _srv(port: int) -> list[SrvRecord]:
    return [SrvRecord("default", "web", "http", "tcp", "web.default.svc", port)]


async def measure(changes: int, root: Path) -> tuple[list[float], list[float]]:
    port = _free_port()
    server = DnsServer("bench", "127.0.0.1", "cluster.local", root, port=port)
    await server.start()
    runner = asyncio.create_task(server.run())
    stopping = multiprocessing.Event()
    mine, theirs = multiprocessing.Pipe()
    asker = multiprocessing.Process(target=ask, args=(port, stopping, theirs))
    changed: list[float] = []
    try:
        server.update([DnsName("default", "web", "", ("10.96.0.10",))], _srv(8000))
        await _restarted(server, 1)
        asker.start()
        await asyncio.sleep(1.0)
        for i in range(changes):
            changed.append(time.monotonic())
            server.update([DnsName("default", "web", "", ("10.96.0.10",))], _srv(8001 + i))
            await _restarted(server, i + 2)
            await asyncio.sleep(1.0)
            if not _srv_names(port, 8001 + i):
                raise RuntimeError(f"web's SRV record does not name port {8001 + i} after a change")
    finally:
        stopping.set()
        asked: list[tuple[float, bool]] = mine.recv() if asker.pid and mine.poll(10) else []
        if asker.pid:
            asker.join(timeout=5)
        await server.stop()
        runner.cancel()
    gaps = [outage(asked, at, at + 0.9) for at in changed]
    quiet = [outage(asked, at - 0.9, at - 0.01) for at in changed]
    return gaps, quiet


async def _restarted(server: DnsServer, count: int) -> None:
    deadline = time.monotonic() + 10
    while server.srv_swaps < count:
        if time.monotonic() > deadline:
            raise RuntimeError("no new SRV dnsmasq took the records within 10 s")
        await asyncio.sleep(0.01)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--changes", type=int, default=10)
    parser.add_argument("--no-record", action="store_true")
    args = parser.parse_args()
    before = load_average()
    with tempfile.TemporaryDirectory(prefix="pinnace-dns-bench-") as tmp:
        os.chmod(tmp, 0o755)
        gaps, quiet = asyncio.run(measure(args.changes, Path(tmp)))
    after = load_average()
    ms = [g * 1000 for g in gaps]
    figures = [
        Figure(
            "DNS answer gap while SRV records change",
            round(statistics.median(ms), 1),
            "ms",
            f"median of {len(ms)}, worst {max(ms):.1f}; quiet baseline median "
            f"{statistics.median(quiet) * 1000:.1f} ms, worst {max(quiet) * 1000:.1f}; "
            f"load {before[0]:.1f} -> {after[0]:.1f}",
        )
    ]
    print(table(figures))
    if not args.no_record:
        record(figures, f"python -m tests.bench.dns_srv_gap --changes {args.changes}")


if __name__ == "__main__":
    main()
