"""One process of hollow agents, driven by tests/bench/hollow.py over stdin/stdout.

Several of these share the hollow fleet out, so the agents' own Python does not
compete for one core with itself (the master is measured, not the fleet).

Each hollow agent joins as a real one does when the master runs TLS: it fetches
the master's chain and pins the CA by the token's hash, sends JoinNode with a
fresh P-256 key's CSR over TLS (agent/join.py, the agent's own code), then opens
its own mTLS connection with the node certificate for RegisterNode and the
session stream. With `--insecure` the join step is skipped and agents share
plaintext connections (`--agents-per-channel`). In the session it heartbeats at
the interval the master gave it and reports every assigned pod Running and ready
at once (no containers).

Protocol (one JSON object per line): the process prints
`{"joined": n, "acked": n, "stages": {...}, "ended": {...}}` every second; on
stdin it takes `reset` (zero the ack counters and heartbeat round trips),
`report` (prints `{"acks": n, "rtt_ms": [...]}`: every heartbeat's round trip
since the last reset), `freeze NAME` (that agent stops heartbeating but keeps its
connection, like a hung machine; prints `{"frozen": NAME, "at": unix time}`) and
`stop`.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import sys
import time
from collections import Counter

import grpc

from agent import credentials as cr
from agent.join import JoinError, Token, join, mtls_channel, parse_token
from protos import node_pb2, node_pb2_grpc

# Join attempts the master answers "busy" (or does not answer in time) are retried after
# the delay it asks for, else after this backoff (doubling, capped), as the agent does.
RETRY_FIRST, RETRY_CAP = 0.2, 10.0
# Failed join attempts of this process's agents, by gRPC code or exception type.
JOIN_FAILURES: Counter[str] = Counter()


class HollowAgent:
    def __init__(self, name: str) -> None:
        self.name = name
        self.reported: set[tuple[str, int]] = set()
        self.outbox: asyncio.Queue[node_pb2.AgentMessage] = asyncio.Queue()
        self.acks = 0
        self.rtt_ms: list[float] = []
        self.sent_at: dict[int, float] = {}
        self.joined = False
        self.frozen = False
        # Why the session ended ("" while it runs): hollow agents do not reconnect.
        self.ended = ""
        self.stage = "new"
        self.join_attempts = 0

    async def join_tls(self, master: str, token: Token) -> grpc.aio.Channel | None:
        """Join with the agent's own code; retry what the master says is transient."""
        self.stage = "joining"
        key_pem = cr.new_key_pem()
        delay = RETRY_FIRST
        while True:
            self.join_attempts += 1
            try:
                creds = await join(master, token, self.name, key_pem)
                break
            except JoinError as exc:
                self.ended = f"JoinNode: {exc}"[:120]
                return None
            except (OSError, grpc.aio.AioRpcError) as exc:
                JOIN_FAILURES[
                    exc.code().name if isinstance(exc, grpc.aio.AioRpcError) else type(exc).__name__
                ] += 1
                wait = (
                    _retry_after(exc) if isinstance(exc, grpc.aio.AioRpcError) else 0.0
                ) or delay * (0.5 + random.random())
                delay = min(RETRY_CAP, delay * 2)
                await asyncio.sleep(wait)
        self.stage = "joined"
        return mtls_channel(master, creds)

    async def run(self, channel: grpc.aio.Channel, stop: asyncio.Event) -> None:
        stub = node_pb2_grpc.NodeServiceStub(channel)
        info = node_pb2.NodeInfo(
            name=self.name,
            address="127.0.0.1",
            capacity=node_pb2.Resources(cpu_millis=32000, memory_bytes=64 * 2**30),
            allocatable=node_pb2.Resources(cpu_millis=32000, memory_bytes=64 * 2**30),
            agent_version="hollow",
            # Real agents serve a witness port, so the master lists them as peers (a
            # hollow agent is never asked: no other agent fences).
            witness_port=9,
        )
        self.stage = "registering"
        delay = RETRY_FIRST
        while True:
            try:
                reply = await stub.RegisterNode(node_pb2.RegisterNodeRequest(node=info))
                break
            except grpc.aio.AioRpcError as exc:
                if exc.code() not in (
                    grpc.StatusCode.UNAVAILABLE,
                    grpc.StatusCode.RESOURCE_EXHAUSTED,
                    grpc.StatusCode.DEADLINE_EXCEEDED,
                ):
                    self.ended = f"RegisterNode: {exc.code().name}: {exc.details()}"[:120]
                    return
                await asyncio.sleep(_retry_after(exc) or delay * (0.5 + random.random()))
                delay = min(RETRY_CAP, delay * 2)
        self.stage = "registered"
        hello = node_pb2.SessionHello(node_name=self.name, session_id=reply.session_id)
        await self.outbox.put(node_pb2.AgentMessage(hello=hello))
        call = stub.StreamSession(self._messages(stop))
        beat = asyncio.create_task(self._heartbeat(stop, reply.heartbeat_interval_seconds))
        try:
            async for msg in call:
                body = msg.WhichOneof("body")
                if body == "assignments":
                    await self._report(msg.assignments)
                elif body == "heartbeat_ack":
                    self.joined = True
                    self.acks += 1
                    acked = msg.heartbeat_ack.sequence
                    sent = self.sent_at.pop(acked, None)
                    if sent is not None:
                        self.rtt_ms.append((time.monotonic() - sent) * 1000)
                    for older in [k for k in self.sent_at if k < acked]:
                        del self.sent_at[older]
        except grpc.aio.AioRpcError as exc:
            self.ended = f"{exc.code().name}: {exc.details()}"[:120]
        else:
            self.ended = "stream closed by the master"
        finally:
            beat.cancel()

    async def _messages(self, stop: asyncio.Event):  # type: ignore[no-untyped-def]
        while not stop.is_set():
            yield await self.outbox.get()

    async def _heartbeat(self, stop: asyncio.Event, interval: float) -> None:
        seq = 0
        # Spread the beats over the interval, as real agents started at random times are.
        await asyncio.sleep(random.random() * interval)
        while not stop.is_set() and not self.frozen:
            seq += 1
            # Beats not yet acknowledged (an ack answers its beat and voids older ones; a
            # slow master's acks arrive after the next beat went out: still counted).
            self.sent_at[seq] = time.monotonic()
            if len(self.sent_at) > 16:
                del self.sent_at[min(self.sent_at)]
            await self.outbox.put(node_pb2.AgentMessage(heartbeat=node_pb2.Heartbeat(sequence=seq)))
            await asyncio.sleep(interval)

    async def _report(self, assignments: node_pb2.PodAssignments) -> None:
        reports = []
        for pod in assignments.pods:
            key = (pod.name, pod.epoch)
            if key in self.reported:
                continue
            self.reported.add(key)
            reports.append(
                node_pb2.PodStatusReport(
                    pod_name=pod.name,
                    epoch=pod.epoch,
                    phase="Succeeded" if pod.stop else "Running",
                    host_ip="127.0.0.1",
                    port_map={"80/TCP": 30000},
                    ready=not pod.stop,
                    removed=pod.stop,
                    started_at=time.time(),
                    containers=[
                        node_pb2.ContainerStatusReport(
                            name=c.name, state="running", ready=True, image=c.image
                        )
                        for c in pod.spec.containers
                    ],
                )
            )
        if reports:
            await self.outbox.put(
                node_pb2.AgentMessage(statuses=node_pb2.PodStatusBatch(pods=reports))
            )


def _retry_after(exc: grpc.aio.AioRpcError) -> float:
    """The master's `retry-after` trailing metadata in seconds (0: none given)."""
    for key, value in exc.trailing_metadata() or ():
        if key == "retry-after":
            try:
                return float(value)
            except (TypeError, ValueError):
                return 0.0
    return 0.0


def emit(doc: dict[str, object]) -> None:
    sys.stdout.write(json.dumps(doc) + "\n")
    sys.stdout.flush()


async def main_async(args: argparse.Namespace) -> None:
    stop = asyncio.Event()
    agents = [HollowAgent(f"hollow-{i:05d}") for i in range(args.first, args.first + args.count)]
    by_name = {a.name: a for a in agents}
    channels: list[grpc.aio.Channel] = []
    tasks: list[asyncio.Task[None]] = []

    # Machines do not all boot in the same millisecond: at most this many joins of this
    # process are in flight at once (1,250 at once spent the fleet's CPU on handshakes that
    # timed out and were retried, and stalled at 417 of 5,000 joined).
    joining = asyncio.Semaphore(args.join_concurrency)

    async def start_tls(agent: HollowAgent, token: Token) -> None:
        async with joining:
            channel = await agent.join_tls(args.master, token)
        if channel is None:
            return
        channels.append(channel)
        await agent.run(channel, stop)

    if args.token:
        token = parse_token(args.token)
        tasks = [asyncio.create_task(start_tls(a, token)) for a in agents]
    else:
        shared = max(1, -(-len(agents) // args.agents_per_channel))
        channels = [grpc.aio.insecure_channel(args.master) for _ in range(shared)]
        tasks = [
            asyncio.create_task(a.run(channels[i % len(channels)], stop))
            for i, a in enumerate(agents)
        ]

    async def status() -> None:
        while not stop.is_set():
            emit(
                {
                    "joined": sum(1 for a in agents if a.joined),
                    "stages": dict(Counter(a.stage for a in agents)),
                    "join_attempts": sum(a.join_attempts for a in agents),
                    "join_failures": dict(JOIN_FAILURES),
                    "ended": dict(Counter(a.ended for a in agents if a.ended)),
                }
            )
            await asyncio.sleep(1.0)

    reporter = asyncio.create_task(status())
    reset_at = time.monotonic()
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    while True:
        line = (await reader.readline()).decode().strip()
        if not line or line == "stop":
            break
        word, _, arg = line.partition(" ")
        if word == "reset":
            reset_at = time.monotonic()
            for a in agents:
                a.acks = 0
                a.rtt_ms = []
            emit({"reset": True})
        elif word == "report":
            emit(
                {
                    "acks": sum(a.acks for a in agents),
                    "seconds": time.monotonic() - reset_at,
                    "rtt_ms": [round(r, 2) for a in agents for r in a.rtt_ms],
                    "without_ack": dict(Counter(a.stage for a in agents if a.acks == 0)),
                }
            )
        elif word == "freeze" and arg in by_name:
            by_name[arg].frozen = True
            emit({"frozen": arg, "at": time.time()})
    stop.set()
    reporter.cancel()
    for t in tasks:
        t.cancel()
    for ch in channels:
        await ch.close(grace=None)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--master", required=True)
    parser.add_argument("--token", default="", help="a join token; none: --insecure master")
    parser.add_argument("--first", type=int, default=0)
    parser.add_argument("--count", type=int, required=True)
    parser.add_argument("--agents-per-channel", type=int, default=10)
    parser.add_argument("--join-concurrency", type=int, default=16, help="joins in flight")
    asyncio.run(main_async(parser.parse_args()))


if __name__ == "__main__":
    main()
