"""The cost of TLS: apply -> 3 running, and heartbeat throughput, with and without TLS.

Run: `.venv/bin/python -m tests.bench.tls [--trials 3] [--heartbeats 20000]`.

For each mode (TLS, the default; `--insecure`) it starts a real master and one
real agent (tests/bench/pinnace_side.py), then measures:

- apply -> running: the median over `--trials` of the time from `pinnace apply`
  (a 3-replica Deployment of nginx:latest) to 3 containers running on the node;
- heartbeat throughput on one session: a hollow node (joined with a token over
  mTLS, or plaintext) registers, opens its session stream and sends
  `--heartbeats` Heartbeat messages as fast as the stream takes them; the rate
  is heartbeats acknowledged per second, and the master's CPU time per 1,000;
- heartbeat throughput over `--sessions` hollow sessions at once (separate
  channels, so separate TLS connections), the same count spread over them.

It prints the two modes side by side. Everything it starts is stopped by PID and
its containers removed by label.
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
from dataclasses import dataclass
from pathlib import Path

import docker
import grpc
import psutil

from agent import credentials as cr
from agent.join import join, mtls_channel, parse_token
from protos import node_pb2 as pb
from protos import node_pb2_grpc
from tests.bench.pinnace_side import PinnaceBench


@dataclass(frozen=True, slots=True)
class ModeResult:
    apply_seconds: list[float]
    one_session_rate: float
    one_session_cpu_per_1000: float
    many_sessions_rate: float
    many_sessions_cpu_per_1000: float


async def _hollow_channel(bench: PinnaceBench, name: str) -> grpc.aio.Channel:
    if bench.insecure:
        return grpc.aio.insecure_channel(bench.address)
    token = parse_token(bench.cli("token", "create").stdout.strip())
    creds = await join(bench.address, token, name, cr.new_key_pem())
    return mtls_channel(bench.address, creds)


async def _heartbeat_burst(channel: grpc.aio.Channel, name: str, count: int) -> None:
    stub = node_pb2_grpc.NodeServiceStub(channel)
    info = pb.NodeInfo(
        name=name,
        address="127.0.0.1",
        capacity=pb.Resources(cpu_millis=1000, memory_bytes=2**30),
        allocatable=pb.Resources(cpu_millis=1000, memory_bytes=2**30),
    )
    reply = await stub.RegisterNode(pb.RegisterNodeRequest(node=info), timeout=30)
    done = asyncio.Event()

    async def requests() -> AsyncIterator[pb.AgentMessage]:
        yield pb.AgentMessage(hello=pb.SessionHello(node_name=name, session_id=reply.session_id))
        for seq in range(1, count + 1):
            yield pb.AgentMessage(heartbeat=pb.Heartbeat(sequence=seq))
        await done.wait()

    call = stub.StreamSession(requests())
    async for msg in call:
        if msg.WhichOneof("body") == "heartbeat_ack" and msg.heartbeat_ack.sequence >= count:
            break
    done.set()
    call.cancel()


async def _throughput(bench: PinnaceBench, sessions: int, total: int) -> tuple[float, float]:
    names = [f"hollow-{uuid.uuid4().hex[:6]}-{i}" for i in range(sessions)]
    channels = [await _hollow_channel(bench, n) for n in names]
    assert bench.procs.master is not None
    master = psutil.Process(bench.procs.master.pid)
    per_session = total // sessions
    try:
        cpu0 = sum(master.cpu_times()[:2])
        start = time.perf_counter()
        await asyncio.gather(
            *(_heartbeat_burst(c, n, per_session) for c, n in zip(channels, names, strict=True))
        )
        elapsed = time.perf_counter() - start
        cpu = sum(master.cpu_times()[:2]) - cpu0
    finally:
        for channel in channels:
            await channel.close()
    sent = per_session * sessions
    return sent / elapsed, cpu / sent * 1000


def run_mode(
    client: docker.DockerClient, insecure: bool, trials: int, heartbeats: int, sessions: int
) -> ModeResult:
    with tempfile.TemporaryDirectory(prefix="pinnace-tls-bench-") as tmp:
        bench = PinnaceBench(client, uuid.uuid4().hex[:6], Path(tmp), insecure=insecure)
        try:
            bench.start(timeout=60)
            times = [
                bench.time_apply(f"tls-{i}-{uuid.uuid4().hex[:4]}", 3, timeout=120)
                for i in range(trials)
            ]
            one_rate, one_cpu = asyncio.run(_throughput(bench, 1, heartbeats))
            many_rate, many_cpu = asyncio.run(_throughput(bench, sessions, heartbeats))
        finally:
            bench.close()
    return ModeResult(times, one_rate, one_cpu, many_rate, many_cpu)


def report(tls: ModeResult, plain: ModeResult, sessions: int) -> str:
    def ratio(a: float, b: float) -> str:
        return f"{a / b:.2f}x" if b else "-"

    rows = [
        ("", "TLS (default)", "--insecure", "TLS / plain"),
        (
            "apply -> 3 running, median (s)",
            f"{statistics.median(tls.apply_seconds):.2f}",
            f"{statistics.median(plain.apply_seconds):.2f}",
            ratio(statistics.median(tls.apply_seconds), statistics.median(plain.apply_seconds)),
        ),
        (
            "heartbeats/s, 1 session",
            f"{tls.one_session_rate:,.0f}",
            f"{plain.one_session_rate:,.0f}",
            ratio(tls.one_session_rate, plain.one_session_rate),
        ),
        (
            "master CPU ms / 1000 heartbeats, 1 session",
            f"{tls.one_session_cpu_per_1000 * 1000:.1f}",
            f"{plain.one_session_cpu_per_1000 * 1000:.1f}",
            ratio(tls.one_session_cpu_per_1000, plain.one_session_cpu_per_1000),
        ),
        (
            f"heartbeats/s, {sessions} sessions",
            f"{tls.many_sessions_rate:,.0f}",
            f"{plain.many_sessions_rate:,.0f}",
            ratio(tls.many_sessions_rate, plain.many_sessions_rate),
        ),
        (
            f"master CPU ms / 1000 heartbeats, {sessions} sessions",
            f"{tls.many_sessions_cpu_per_1000 * 1000:.1f}",
            f"{plain.many_sessions_cpu_per_1000 * 1000:.1f}",
            ratio(tls.many_sessions_cpu_per_1000, plain.many_sessions_cpu_per_1000),
        ),
    ]
    widths = [max(len(r[i]) for r in rows) for i in range(4)]
    return "\n".join(
        "  ".join(
            cell.ljust(widths[i]) if i == 0 else cell.rjust(widths[i]) for i, cell in enumerate(r)
        )
        for r in rows
    )


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else "")
    parser.add_argument("--trials", type=int, default=3)
    parser.add_argument("--heartbeats", type=int, default=20_000)
    parser.add_argument("--sessions", type=int, default=50)
    args = parser.parse_args(argv)
    client = docker.from_env()
    try:
        tls = run_mode(client, False, args.trials, args.heartbeats, args.sessions)
        plain = run_mode(client, True, args.trials, args.heartbeats, args.sessions)
    finally:
        client.close()
    print(report(tls, plain, args.sessions))
    print(f"apply trials (s): TLS {tls.apply_seconds}, plain {plain.apply_seconds}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
