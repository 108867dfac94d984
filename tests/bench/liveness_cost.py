"""What one liveness message costs the master's CPU: a heartbeat (+ its ack), a bare beat, a ping.

Run: `.venv/bin/python -m tests.bench.liveness_cost [--sessions 200] [--rate 1000]
[--window 10] [--trials 3]`.

A dead node must be found within 5 s at 5,000 nodes, a hung one too (its agent's loop
stuck, its gRPC core still answering pings); the candidates differ in what each message
costs the master, times how many a second 5,000 nodes send. This bench starts one real
master (TLS, `--no-lb`, as tests/bench/hollow.py runs it), joins `--sessions` hollow
sessions over their own mTLS connections (the agent's join code), and for each kind
sends `--rate` messages a second in total for `--window` seconds; the master's CPU time
(psutil: user + system, all its threads) in that window, less its idle CPU in an equal
window, over the messages sent, is the cost of one. Kinds:

- `heartbeat`: Heartbeat, which the master renews a lease for and acknowledges;
- `beat`: a bare liveness beat as a session could carry one: an AgentMessage with no
  body (no ack, no lease work: the master reads it, finds nothing to do, and notes
  nothing; a real beat would at least note the time, so this is its floor);
- `ping`: not a message: the idle CPU of a master pinging every session each second
  less that of one pinging every hour (`--session-ping-seconds`), over the pings.

Trials interleave the kinds. Prints one table, appends one JSON line to results.jsonl.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Sequence
from pathlib import Path

import docker
import grpc
import psutil

from agent import credentials as cr
from agent.join import join, mtls_channel, parse_token
from protos import node_pb2 as pb
from protos import node_pb2_grpc
from tests.bench.procs import PinnaceProcs
from tests.bench.results import Figure, record

KINDS = ("heartbeat", "beat")


def _message(kind: str, seq: int) -> pb.AgentMessage:
    if kind == "heartbeat":
        return pb.AgentMessage(heartbeat=pb.Heartbeat(sequence=seq))
    return pb.AgentMessage()


class Session:
    """One hollow node's registration and session stream; `send` queues a message on it."""

    def __init__(self, channel: grpc.aio.Channel, name: str) -> None:
        self.channel = channel
        self.name = name
        self.outbox: asyncio.Queue[pb.AgentMessage | None] = asyncio.Queue()
        self.task: asyncio.Task[None] | None = None

    async def open(self) -> None:
        stub = node_pb2_grpc.NodeServiceStub(self.channel)
        info = pb.NodeInfo(
            name=self.name,
            address="127.0.0.1",
            capacity=pb.Resources(cpu_millis=1000, memory_bytes=2**30),
            allocatable=pb.Resources(cpu_millis=1000, memory_bytes=2**30),
        )
        reply = await stub.RegisterNode(pb.RegisterNodeRequest(node=info), timeout=60)
        hello = pb.SessionHello(node_name=self.name, session_id=reply.session_id)
        self.outbox.put_nowait(pb.AgentMessage(hello=hello))

        async def requests() -> AsyncIterator[pb.AgentMessage]:
            while (msg := await self.outbox.get()) is not None:
                yield msg

        call = stub.StreamSession(requests())

        async def drain() -> None:
            async for _ in call:
                pass

        self.task = asyncio.create_task(drain())


async def _send_for(sessions: list[Session], kind: str, rate: float, seconds: float) -> int:
    """Send `rate` messages a second in total, round robin, for `seconds`; how many."""
    sent = 0
    start = time.monotonic()
    while (elapsed := time.monotonic() - start) < seconds:
        due = int(elapsed * rate)
        while sent < due:
            sessions[sent % len(sessions)].outbox.put_nowait(_message(kind, sent + 1))
            sent += 1
        await asyncio.sleep(0.01)
    return sent


async def _cpu_over(
    master: psutil.Process, seconds: float, work: asyncio.Future[int] | None
) -> float:
    cpu0 = sum(master.cpu_times()[:2])
    if work is None:
        await asyncio.sleep(seconds)
    else:
        await work
    await asyncio.sleep(0.5)  # the last messages read
    return sum(master.cpu_times()[:2]) - cpu0


async def _measure(
    procs: PinnaceProcs, sessions: int, rate: float, window: float, trials: int
) -> dict[str, list[float]]:
    token = parse_token(procs.join_token())
    assert procs.master is not None
    master = psutil.Process(procs.master.pid)
    names = [f"cost-{uuid.uuid4().hex[:6]}-{i}" for i in range(sessions)]
    channels: list[grpc.aio.Channel] = []
    opened: list[Session] = []
    for name in names:
        # A join holds an admission slot until its node registers: one after the other.
        creds = await join(procs.address, token, name, cr.new_key_pem())
        channels.append(mtls_channel(procs.address, creds))
        opened.append(Session(channels[-1], name))
        await opened[-1].open()
    costs: dict[str, list[float]] = {k: [] for k in KINDS}
    idle_cpu: list[float] = []
    try:
        await asyncio.sleep(3.0)  # registrations settle
        for _ in range(trials):
            idle = await _cpu_over(master, window + 0.5, None)
            idle_cpu.append(idle / (window + 0.5))
            for kind in KINDS:
                work = asyncio.ensure_future(_send_for(opened, kind, rate, window))
                cpu = await _cpu_over(master, window, work)
                costs[kind].append((cpu - idle) / work.result() * 1000)
    finally:
        for s in opened:
            s.outbox.put_nowait(None)
            if s.task is not None:
                s.task.cancel()
        for c in channels:
            await c.close()
    costs["idle_core"] = idle_cpu
    return costs


def run(
    sessions: int, rate: float, window: float, trials: int, ping_seconds: str
) -> dict[str, list[float]]:
    client = docker.from_env()
    with tempfile.TemporaryDirectory(prefix="pinnace-liveness-cost-") as tmp:
        procs = PinnaceProcs(client, Path(tmp))
        try:
            procs.start_master("--no-lb", "--session-ping-seconds", ping_seconds)
            return asyncio.run(_measure(procs, sessions, rate, window, trials))
        finally:
            procs.close()


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sessions", type=int, default=200)
    parser.add_argument("--rate", type=float, default=1000.0, help="messages a second in all")
    parser.add_argument("--window", type=float, default=10.0)
    parser.add_argument("--trials", type=int, default=3)
    args = parser.parse_args(argv)
    load0 = psutil.getloadavg()
    pinged = run(args.sessions, args.rate, args.window, args.trials, "1")
    quiet = run(args.sessions, args.rate, args.window, args.trials, "3600")
    load1 = psutil.getloadavg()
    # Pings a second: one per session each second (HTTP/2 keepalive, master/server.py).
    ping_ms = [
        (a - b) / args.sessions * 1000
        for a, b in zip(pinged["idle_core"], quiet["idle_core"], strict=True)
    ]
    rows = {
        "heartbeat + ack": pinged["heartbeat"] + quiet["heartbeat"],
        "beat (no ack)": pinged["beat"] + quiet["beat"],
        "ping": ping_ms,
    }
    print(f"{args.sessions} mTLS sessions, {args.rate:g} msg/s, {args.window:g} s windows")
    print(f"{'message':<18}{'median ms':>10}{'worst ms':>10}{'at 5,000/s':>12}   runs")
    for label, values in rows.items():
        med = statistics.median(values)
        print(
            f"{label:<18}{med:>10.3f}{max(values):>10.3f}{med * 5:>10.2f} c   "
            + " ".join(f"{v:.3f}" for v in values)
        )
    print(
        f"idle master (pinged 1 s): {statistics.median(pinged['idle_core']):.3f} core; "
        f"(pinged 1 h): {statistics.median(quiet['idle_core']):.3f} core"
    )
    print(f"load {load0[0]:.1f} -> {load1[0]:.1f}")
    record(
        [
            Figure(
                f"liveness_cost.{label.split(' ')[0]}_ms",
                statistics.median(values),
                "ms",
                f"master CPU per message, median of {len(values)}, worst {max(values):.3f}",
            )
            for label, values in rows.items()
        ],
        "python -m tests.bench.liveness_cost " + " ".join(sys.argv[1:] if argv is None else argv),
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
