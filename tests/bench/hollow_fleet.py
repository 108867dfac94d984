"""One process of hollow agents, driven by tests/bench/hollow.py over stdin/stdout.

Several of these share the hollow fleet out, so the agents' own Python does not
compete for one core with itself (the master is measured, not the fleet).

Each hollow agent joins as a real one does when the master runs TLS: it fetches
the master's chain and pins the CA by the token's hash, sends JoinNode with a
fresh P-256 key's CSR over TLS (agent/join.py, the agent's own code), then opens
its own mTLS connection with the node certificate for RegisterNode and the
session stream. With `--insecure` the join step is skipped and agents share
plaintext connections (`--agents-per-channel`). In the session it heartbeats by
the plan the master gave it, changed by its acks (longer or shorter) by the agent's own
rule (agent/state/plan.py; a shorter plan confirmed by a heartbeat at once), and reports
every assigned pod Running and ready at once (no containers). It takes the master's
assignment changes as a real agent does (agent/assignment_set.py: numbered, the whole set
asked for again when one is out of turn).

Protocol (one JSON object per line): the process prints
`{"joined": n, "acked": n, "stages": {...}, "ended": {...}, "plans": {...}}` every second
(`plans`: how many of its live agents run each heartbeat interval, seconds as "%g" to a
tenth, so the bench sees when the fleet is back on the cluster's plan after a burst); on
stdin it takes `reset` (zero the ack counters and heartbeat round trips),
`report` (prints `{"acks": n, "rtt_ms": [...], "intervals": {...}}`: every heartbeat's
round trip since the last reset, and how many agents run each heartbeat interval),
`freeze NAME` (that agent's event loop is wedged: it stops
heartbeating, keeps its connection and its gRPC core answers pings; its loop watchdog,
the agent's own decision in agent/state/loopwatch.py judged by this process on its
behalf, ends its connection as agent/watchdog.py does once the loop has missed 2.5 s of
ticks; plaintext agents share connections, so theirs is not ended; prints
`{"frozen": NAME, "at": unix time}`), `stall NAME` (the same wedge unseen by the
watchdog, as one holding the GIL would be: only its lease finds it; prints
`{"stalled": NAME, "at": ..., "interval": its heartbeat interval}`),
`kill NAME` (its connection is closed, as the kernel closes a killed process's
sockets; prints `{"killed": NAME, "at": ...}`), `cut NAME` (an agent named in
`--proxied` talks to the master through a TCP relay in this process; the relay
stops passing bytes both ways and keeps both sockets open, as a cut cable or a
dead machine: nothing tells the master but unanswered pings; prints
`{"cut": NAME, "at": ...}`) and `stop`.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import random
import sys
import time
from collections import Counter
from collections.abc import Iterable

import grpc

from agent import credentials as cr
from agent.assignment_set import AskWhole, AssignmentSet
from agent.join import JoinError, Token, join_when_reachable, mtls_channel, parse_token
from agent.join_retry import RETRY_FIRST, retry_after
from agent.state.loopwatch import LoopWatch, LoopWatchSettings, Wedged, look, start_watch
from agent.state.plan import confirms_at_once, follow, next_beat, registered_plan
from master.grpc_wakeups import drain_grpc_wakeups
from protos import node_pb2, node_pb2_grpc

# Join attempts the master answers "busy" (or does not answer in time) are retried as
# the agent retries them (agent/join_retry.py).
RETRY_CAP = 10.0
# Failed join attempts of this process's agents, by gRPC code or exception type.
JOIN_FAILURES: Counter[str] = Counter()
# Sessions lost and registered again, by why they ended (the gRPC code).
RECONNECTS: Counter[str] = Counter()
# Hung agents whose loop watchdog ended their connection: when it began to, and when the
# close returned (unix time), for the bench's timeline of a hang's detection.
CLOSED: dict[str, tuple[float, float]] = {}
# Messages this process's agents read and wrote: assignment messages (whole sets and changes)
# received, and status batches sent. Per pod, what the master's sends and reads cost scales with.
MESSAGES: Counter[str] = Counter()


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
        # Why the session ended for good ("" while it runs): a hollow agent registers again
        # after a lost session, as a real one does, unless it was killed, cut or hung.
        self.ended = ""
        self.stage = "new"
        self.join_attempts = 0
        self.reconnects = 0
        # The heartbeat plan the master gave, changed by its acks as the cluster grows and
        # the master's budget moves, followed by the agent's own rule (agent/state/plan.py).
        self.plan = registered_plan(1.0, None)
        # Set when a shorter plan arrives: a heartbeat confirms it at once.
        self.sooner = asyncio.Event()

    async def join_tls(self, master: str, token: Token) -> cr.NodeCredentials | None:
        """Join with the agent's own code; retry what the master says is transient."""
        self.stage = "joining"

        def failed(exc: BaseException) -> None:
            self.join_attempts += 1
            rpc = exc if isinstance(exc, grpc.aio.AioRpcError) else None
            JOIN_FAILURES[rpc.code().name if rpc is not None else type(exc).__name__] += 1

        # The agent's own join and retry (agent/join.py, agent/join_retry.py).
        try:
            creds = await join_when_reachable(
                master, token, self.name, cr.new_key_pem(), on_retry=failed
            )
        except JoinError as exc:
            self.ended = f"JoinNode: {exc}"[:120]
            return None
        self.join_attempts += 1
        self.stage = "joined"
        return creds

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
        while True:
            why = await self._session(stub, info, stop)
            if self.frozen or stop.is_set():
                self.ended = why
                return
            # A real agent registers again after a lost session (agent/state/lease.py).
            self.reconnects += 1
            RECONNECTS[":".join(why.split(":")[:2])] += 1  # e.g. "RegisterNode: CANCELLED"
            await asyncio.sleep(RETRY_FIRST * (0.5 + random.random()))

    async def _session(
        self, stub: node_pb2_grpc.NodeServiceStub, info: node_pb2.NodeInfo, stop: asyncio.Event
    ) -> str:
        """One registration and session stream; why it ended."""
        self.stage = "registering"
        self.outbox = asyncio.Queue()
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
                    return f"RegisterNode: {exc.code().name}: {exc.details()}"[:120]
                await asyncio.sleep(
                    retry_after(exc.trailing_metadata()) or delay * (0.5 + random.random())
                )
                delay = min(RETRY_CAP, delay * 2)
        self.stage = "registered"
        hello = node_pb2.SessionHello(
            node_name=self.name, session_id=reply.session_id, takes_assignment_changes=True
        )
        # Pod -> epoch, as the session's numbered messages build the set.
        held: AssignmentSet[int] = AssignmentSet()
        await self.outbox.put(node_pb2.AgentMessage(hello=hello))
        call = stub.StreamSession(self._messages(stop))
        self.plan = registered_plan(reply.heartbeat_interval_seconds, reply.lease_seconds)
        beat = asyncio.create_task(self._heartbeat(stop))
        # The newest beat acked in this session (its beats are numbered from 1).
        acked_last = 0
        try:
            async for msg in call:
                body = msg.WhichOneof("body")
                if body in ("assignments", "assignment_changes"):
                    MESSAGES["assignment messages received"] += 1
                if body == "assignments":
                    whole = msg.assignments
                    held.whole(whole.sequence, {p.name: p.epoch for p in whole.pods})
                    await self._report(whole.pods)
                elif body == "assignment_changes":
                    changes = msg.assignment_changes
                    outcome = held.changes(
                        changes.sequence,
                        {p.name: p.epoch for p in changes.pods},
                        [k.name for k in changes.removed],
                    )
                    if isinstance(outcome, AskWhole):
                        await self._ask_whole(outcome)
                    elif outcome:
                        await self._report(changes.pods)
                elif body == "heartbeat_ack":
                    if (ask := held.acked(msg.heartbeat_ack.assignment_sequence)) is not None:
                        await self._ask_whole(ask)
                    self.joined = True
                    ack = msg.heartbeat_ack
                    # An ack of a beat acked already is a plan offered between beats: not a
                    # heartbeat answered (the acks a second are the heartbeats').
                    if ack.sequence > acked_last:
                        acked_last = ack.sequence
                        self.acks += 1
                    was = self.plan
                    self.plan = follow(
                        was, ack.plan, ack.heartbeat_interval_seconds, ack.lease_seconds
                    )
                    if confirms_at_once(was, self.plan):
                        self.sooner.set()  # a heartbeat at once confirms it
                    acked = msg.heartbeat_ack.sequence
                    sent = self.sent_at.pop(acked, None)
                    if sent is not None:
                        self.rtt_ms.append((time.monotonic() - sent) * 1000)
                    for older in [k for k in self.sent_at if k < acked]:
                        del self.sent_at[older]
        except grpc.aio.AioRpcError as exc:
            return f"{exc.code().name}: {exc.details()}"[:120]
        else:
            return "stream closed by the master"
        finally:
            beat.cancel()

    async def _ask_whole(self, ask: AskWhole) -> None:
        resync = node_pb2.AssignmentsResync(sequence=ask.sequence, reason=ask.reason)
        await self.outbox.put(node_pb2.AgentMessage(assignments_resync=resync))

    async def _messages(self, stop: asyncio.Event):  # type: ignore[no-untyped-def]
        while not stop.is_set():
            yield await self.outbox.get()

    async def _heartbeat(self, stop: asyncio.Event) -> None:
        seq = 0
        # Spread the beats over the interval, as real agents started at random times are.
        await asyncio.sleep(random.random() * self.plan.interval)
        while not stop.is_set() and not self.frozen:
            seq += 1
            # Beats not yet acknowledged (an ack answers its beat and voids older ones; a
            # slow master's acks arrive after the next beat went out: still counted).
            last = self.sent_at[seq] = time.monotonic()
            if len(self.sent_at) > 16:
                del self.sent_at[min(self.sent_at)]
            # Stamped as the agent stamps its beats (the master's read backlog).
            beat = node_pb2.Heartbeat(sequence=seq, plan=self.plan.number, sent_at=time.time())
            await self.outbox.put(node_pb2.AgentMessage(heartbeat=beat))
            # As the agent does (agent/state/lease.py plan_given): a shorter plan is
            # confirmed by a heartbeat at once, and beaten by from that one on.
            self.sooner.clear()
            while not stop.is_set() and not self.frozen:
                wait = next_beat(last, self.plan.interval, time.monotonic()) - time.monotonic()
                if wait <= 0:
                    break
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(wait):
                        await self.sooner.wait()
                if self.sooner.is_set():
                    break

    async def _report(self, pods: Iterable[node_pb2.PodAssignment]) -> None:
        reports = []
        for pod in pods:
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
            MESSAGES["status batches sent"] += 1
            await self.outbox.put(
                node_pb2.AgentMessage(statuses=node_pb2.PodStatusBatch(pods=reports))
            )


class Relay:
    """A TCP relay to the master that can be cut: bytes stop both ways, sockets stay open."""

    def __init__(self, master: str) -> None:
        host, _, port = master.rpartition(":")
        self._target = (host.strip("[]"), int(port))
        self._cut = asyncio.Event()
        self._server: asyncio.Server | None = None
        self._held: list[asyncio.StreamWriter] = []

    async def start(self) -> str:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        port = self._server.sockets[0].getsockname()[1]
        return f"127.0.0.1:{port}"

    def cut(self) -> None:
        self._cut.set()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            up_reader, up_writer = await asyncio.open_connection(*self._target)
        except OSError:
            # The master is gone (stopped, or SIGTERMed under load): the agent's connection
            # ends, as a direct one would. Raised, it printed a traceback per reconnect.
            writer.close()
            return
        self._held += [writer, up_writer]
        with contextlib.suppress(asyncio.CancelledError, ConnectionError):
            await asyncio.gather(self._pump(reader, up_writer), self._pump(up_reader, writer))

    async def _pump(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        cut = asyncio.ensure_future(self._cut.wait())
        while True:
            read = asyncio.ensure_future(reader.read(65536))
            await asyncio.wait([read, cut], return_when=asyncio.FIRST_COMPLETED)
            if self._cut.is_set():
                read.cancel()
                await asyncio.Event().wait()  # hold the sockets open, pass nothing
            data = read.result()
            if not data:
                writer.close()
                return
            writer.write(data)
            await writer.drain()


def emit(doc: dict[str, object]) -> None:
    sys.stdout.write(json.dumps(doc) + "\n")
    sys.stdout.flush()


def _drained_wakeups() -> grpc.aio.Channel:
    """This process's 1,250 sessions share one loop, where a real agent has one stream in
    its own process: gRPC's wake-up socket is drained whole at each turn as the master's is
    (master/grpc_wakeups.py), or a busy fleet loop reads one completion a turn and the bench
    times its own backlog. gRPC binds its reader to the loop with the first channel and
    drops it when its last channel is gone, so the channel returned (never connected) is
    kept open for the fleet's life."""
    anchor = grpc.aio.insecure_channel("127.0.0.1:1")
    drain_grpc_wakeups(asyncio.get_running_loop())
    return anchor


async def main_async(args: argparse.Namespace) -> None:
    anchor = _drained_wakeups()
    stop = asyncio.Event()
    agents = [HollowAgent(f"hollow-{i:05d}") for i in range(args.first, args.first + args.count)]
    by_name = {a.name: a for a in agents}
    channels: list[grpc.aio.Channel] = []
    tasks: list[asyncio.Task[None]] = []

    # Machines do not all boot in the same millisecond: at most this many joins of this
    # process are in flight at once (1,250 at once spent the fleet's CPU on handshakes that
    # timed out and were retried, and stalled at 417 of 5,000 joined).
    joining = asyncio.Semaphore(args.join_concurrency)

    proxied = {n for n in args.proxied.split(",") if n}
    relays: dict[str, Relay] = {}
    own_channel: dict[str, grpc.aio.Channel] = {}

    async def start_tls(agent: HollowAgent, token: Token) -> None:
        async with joining:
            creds = await agent.join_tls(args.master, token)
        if creds is None:
            return
        target = args.master
        if agent.name in proxied:
            relays[agent.name] = relay = Relay(args.master)
            target = await relay.start()
        channel = mtls_channel(target, creds)
        own_channel[agent.name] = channel
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
                    "reconnects": dict(RECONNECTS),
                    "closed": dict(CLOSED),
                    "messages": dict(MESSAGES),
                    "ended": dict(Counter(a.ended for a in agents if a.ended)),
                    "plans": dict(
                        Counter(
                            f"{round(a.plan.interval, 1):g}"
                            for a in agents
                            if a.joined and not a.frozen and not a.ended
                        )
                    ),
                }
            )
            await asyncio.sleep(1.0)

    # The wedged agents' loop watchdogs (name -> its watch and its loop's last tick). An
    # agent whose loop runs ticks at every look and is never judged, so only the frozen
    # ones are looked at: one look each per period instead of one per agent.
    watchdog = LoopWatchSettings()
    wedged: dict[str, tuple[LoopWatch, float]] = {}

    async def watch_loops() -> None:
        while not stop.is_set():
            await asyncio.sleep(watchdog.period)
            now = time.monotonic()
            for name, (watch, tick) in list(wedged.items()):
                watch, verdict = look(watch, now, tick, watchdog)
                wedged[name] = (watch, tick)
                if isinstance(verdict, Wedged):
                    del wedged[name]
                    began = time.time()
                    await own_channel[name].close(grace=None)
                    CLOSED[name] = (began, time.time())

    reporter = asyncio.create_task(status())
    watcher = asyncio.create_task(watch_loops())
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
                    # The heartbeat intervals the agents run now (seconds, rounded).
                    "intervals": dict(Counter(f"{a.plan.interval:.0f}" for a in agents)),
                }
            )
        elif word == "freeze" and arg in by_name:
            by_name[arg].frozen = True
            at, now = time.time(), time.monotonic()
            if arg in own_channel:
                # Its loop last ticked up to a period before the wedge.
                wedged[arg] = (start_watch(now), now - random.random() * watchdog.period)
            emit({"frozen": arg, "at": at})
        elif word == "stall" and arg in by_name:
            by_name[arg].frozen = True
            plan = by_name[arg].plan
            emit({"stalled": arg, "at": time.time(), "interval": plan.interval})
        elif word == "kill" and arg in own_channel:
            by_name[arg].frozen = True
            at = time.time()
            await own_channel[arg].close(grace=None)
            emit({"killed": arg, "at": at})
        elif word == "cut" and arg in relays:
            by_name[arg].frozen = True
            relays[arg].cut()
            emit({"cut": arg, "at": time.time()})
    stop.set()
    reporter.cancel()
    watcher.cancel()
    for t in tasks:
        t.cancel()
    for ch in channels:
        await ch.close(grace=None)
    await anchor.close(grace=None)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--master", required=True)
    parser.add_argument("--token", default="", help="a join token; none: --insecure master")
    parser.add_argument("--first", type=int, default=0)
    parser.add_argument("--count", type=int, required=True)
    parser.add_argument("--agents-per-channel", type=int, default=10)
    parser.add_argument("--join-concurrency", type=int, default=16, help="joins in flight")
    parser.add_argument("--proxied", default="", help="agents reached through a relay (cut)")
    # The agent's join code logs its first failed attempt; the fleet counts them instead
    # (thousands of agents' warnings on stderr drowned the bench's own lines).
    logging.getLogger("pinnace.agent").setLevel(logging.ERROR)
    asyncio.run(main_async(parser.parse_args()))


if __name__ == "__main__":
    main()
