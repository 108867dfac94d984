"""The agent's gRPC session with the master (grpc.aio): register, then one stream.

Per connection: RegisterNode (node info, capacity, and the pods found running,
so a restarted agent's containers are adopted, not replaced), then StreamSession:
a SessionHello first, a Heartbeat whenever the state machine says one is due,
and a batch of changed pod statuses at most every ~100 ms (from the
StatusOutbox); down come PodAssignments (the complete set; the newest revision
wins) and, from a master that sends them, PodAssignmentChanges (what changed since,
numbered: agent/assignment_set.py builds the complete set of them, or asks for it
again with an AssignmentsResync when one is out of turn), HeartbeatAcks, and
ResendReports when the master reloaded its memory from its store (every report goes
again, and the notices of the last minutes: the master lost those it had not stored;
agent/notices.py). Any
error ends the connection; it is retried after the delay the state machine gives,
re-registering each time.

Every decision (fence or not, heartbeat or not, how long to wait before the
next attempt, what to log) is the state machine's (agent/state/lease.py): this
module turns what happens on the wire into events (`Registered`, `MasterHeard`,
`HeartbeatDue`, `Tick`, `SessionEnded`) and performs the instructions that come
back (`SendHeartbeat`, `RestartSession`, `Reconnect`, `AskPeers` through the
witness client, `SendNotice`). Each message received is
offered to the state machine before it is used, so messages that waited out a
freeze or a partition in a socket buffer fence first and are then dropped with
the session. All waiting is on the injected clock.

For the peers that ask this node about the master (agent/witness.py),
`probe_master` sends one extra heartbeat and waits briefly for the master's
answer. On SIGTERM, `goodbye` tells the master the agent will be back (its
containers keep running), so the master gives the node a grace instead of
replacing its pods when the lease runs out.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import AsyncIterator, Callable, Iterable, Sequence

import grpc

from agent.assignment_set import AskWhole, AssignmentSet
from agent.claim_volumes import ClaimOrders
from agent.convert import (
    AssignmentChunks,
    assignment_from_proto,
    log_order_from_proto,
    node_info_to_proto,
    status_to_proto,
    usage_to_proto,
)
from agent.exec import ExecInput, ExecOrder, ExecRunner
from agent.fencing import PeerView, witness_times
from agent.join_retry import retry_after
from agent.logs import LogStreamer
from agent.model import Assignments, NodeInfo, PeerAddress, PodAssignment
from agent.nodeproxy.proxy import ListenerProblem
from agent.nodeproxy.table import ServiceTables, table_from_proto
from agent.notices import NoticeLog
from agent.outbox import FLUSH_INTERVAL, StatusOutbox, flush_pause
from agent.state.events import (
    AskPeers,
    Event,
    HeartbeatDue,
    Instruction,
    MasterHeard,
    PeersAnswered,
    PeersUpdated,
    PlanChanged,
    PlanGiven,
    Reconnect,
    Registered,
    RestartSession,
    SendHeartbeat,
    SendNotice,
    SessionEnded,
    Tick,
)
from agent.state.plan import next_beat
from agent.usage import UsageSampler, hold_for_starts
from agent.witness import WitnessClient
from agent.worker import Worker, wait_event
from kernel.clock import Clock
from kernel.limits import AGENT_CHANNEL_OPTIONS
from kernel.names import pod_ref
from protos import node_pb2 as pb
from protos import node_pb2_grpc

log = logging.getLogger("pinnace.agent")

# metrics-server scrapes every 15 s; `pinnace top` is fresher at little cost. In a large
# cluster the master stretches the heartbeat (master/controllers/heartbeats.py), and the
# usage report, the larger message, stretches with it.
USAGE_INTERVAL = 5.0


def usage_interval(heartbeat: float) -> float:
    """Seconds between usage reports for the heartbeat interval the master gave."""
    return max(USAGE_INTERVAL, heartbeat)


FENCE_TICK = 0.2
REGISTER_TIMEOUT = 10.0
# How long a re-registration after a fence waits for the teardown (a stuck engine
# must not keep the node away from its master for ever).
FENCE_TEARDOWN_WAIT = 10.0


# A follower master's refusal names the leader in this trailing metadata.
LEADER_METADATA = "pinnace-leader"
NOT_THE_LEADER = "not the leader"


def leader_hint(exc: BaseException) -> str:
    """The leader's address a follower master named when refusing us ("" if none)."""
    if not isinstance(exc, grpc.aio.AioRpcError):
        return ""
    for key, value in exc.trailing_metadata() or ():
        if key == LEADER_METADATA and isinstance(value, str):
            return value
    return ""


def busy_hint(exc: BaseException) -> float:
    """Seconds a busy master asked us to wait before registering again (0: it did not):
    RESOURCE_EXHAUSTED with a `retry-after` trailer (master/pki/admission.py)."""
    if not isinstance(exc, grpc.aio.AioRpcError):
        return 0.0
    if exc.code() != grpc.StatusCode.RESOURCE_EXHAUSTED:
        return 0.0
    return retry_after(exc.trailing_metadata())


def describe_error(exc: BaseException) -> tuple[str, bool]:
    """One readable phrase for a connection failure, and whether it was 'connection refused'."""
    if isinstance(exc, grpc.aio.AioRpcError):
        details = exc.details() or ""
        refused = "refused" in details.lower()
        if refused:
            return "connection refused", True
        if "is a follower" in details or "no master is the leader" in details:
            # One of several masters, not the leader: retry soon, as for a refusal.
            return f"{NOT_THE_LEADER} ({details})", True
        if exc.code() == grpc.StatusCode.UNAVAILABLE:
            return f"unavailable ({details})", False
        return f"{exc.code().name}: {details}", False
    return str(exc) or type(exc).__name__, False


def _ask_whole(outgoing: asyncio.Queue[pb.AgentMessage], ask: AskWhole) -> None:
    log.warning("asking the master for the whole assignment set: %s", ask.reason)
    resync = pb.AssignmentsResync(sequence=ask.sequence, reason=ask.reason)
    outgoing.put_nowait(pb.AgentMessage(assignments_resync=resync))


class _Restart(Exception):
    """The state machine asked for a new session (after a fence)."""


def _restarts(instructions: Sequence[Instruction]) -> bool:
    return any(isinstance(i, RestartSession) for i in instructions)


class Session:
    def __init__(
        self,
        target: str,
        node: NodeInfo,
        worker: Worker,
        outbox: StatusOutbox,
        clock: Clock,
        jitter: Callable[[], float] = random.random,
        channel: Callable[[], grpc.aio.Channel] | None = None,
        witness: WitnessClient | None = None,
        logs: LogStreamer | None = None,
        prefer: Callable[[str], None] | None = None,
        usage: UsageSampler | None = None,
        claims: ClaimOrders | None = None,
        services: ServiceTables | None = None,
        execs: ExecRunner | None = None,
        pod_cidr: Callable[[str], None] | None = None,
    ) -> None:
        self._target = target
        # Told the node's pod subnet at each registration, before any assignment arrives
        # (the runtime makes the node's pod bridge of it, agent/hostgw/bridge.py).
        self._pod_cidr = pod_cidr
        # The master's removal orders for claim volumes (agent/claim_volumes.py).
        self._claims = claims
        # Commands the master asks to run in containers (agent/exec.py).
        self._execs = execs
        # Several masters: told the leader's address when a follower refuses us.
        self._prefer = prefer
        # CPU and memory for `pinnace top` (agent/usage.py), sent every USAGE_INTERVAL.
        self._usage = usage
        # The cluster's Services for the node proxy and DNS (agent/nodeproxy/table.py).
        self._services = services
        # Container logs the master asks for (agent/logs.py).
        self._logs = logs
        self._node = node
        self._worker = worker
        self._outbox = outbox
        # Set by every update of the outbox: changed reports go without waiting for a tick.
        self._reports_due = asyncio.Event()
        outbox.on_update(self._reports_due.set)
        self._clock = clock
        self._jitter = jitter
        # Builds each connection's channel (mTLS with the current node certificate,
        # agent/join.py); plaintext when not given.
        self._channel = channel or (
            lambda: grpc.aio.insecure_channel(self._target, options=AGENT_CHANNEL_OPTIONS)
        )
        self._witness = witness
        self._restart = asyncio.Event()
        self.session_id = ""
        # The current stream's way up (None between sessions), and what waits to go up it.
        self._outgoing: asyncio.Queue[pb.AgentMessage] | None = None
        self._notices: list[SendNotice] = []
        # The notices sent lately, and those to send again (marked `again`): the master may
        # have lost them (agent/notices.py).
        self._notice_log = NoticeLog()
        self._notices_again: list[SendNotice] = []
        # The node proxy's refused Service ports: the newest list, and whether this
        # session has sent it (a new session sends it again: the master may be new).
        self._proxy_problems = pb.ProxyProblems()
        self._proxy_problems_due = False
        # This machine's host-gw state (agent/hostgw), likewise; None until host-gw has
        # tried its routes once (nothing to say without it).
        self._pod_routes: pb.PodRoutes | None = None
        self._pod_routes_due = False
        self._asks: set[asyncio.Task[None]] = set()
        # Set whenever a message from the master is accepted (probe_master waits on it).
        self._heard = asyncio.Event()
        # A shorter heartbeat interval arrived: the next beat is due sooner than planned.
        self._beat_sooner = asyncio.Event()
        self._probe_sent = float("-inf")

    def notify(self, reason: str, message: str) -> None:
        """Tell the master something users should see as an event of this node (sent once
        a session is up)."""
        self._notices.append(SendNotice(reason, message))

    def report_proxy_problems(self, problems: Iterable[ListenerProblem]) -> None:
        """The Service ports this node's proxy cannot serve, the whole list (sent once a
        session is up, and again on every new session)."""
        self._proxy_problems = pb.ProxyProblems(
            problems=[
                pb.ProxyProblem(
                    namespace=p.namespace,
                    service=p.service,
                    port=p.port,
                    reason=p.reason,
                    message=p.message,
                )
                for p in problems
            ]
        )
        self._proxy_problems_due = True

    def report_pod_routes(self, ready: str, unreached: Iterable[tuple[str, str]]) -> None:
        """This node's pod subnet once its rules are in place ("" not), and the (node, pod
        subnet) pairs this machine cannot reach (sent once a session is up, and again on
        every new session)."""
        message = pb.PodRoutes(
            ready_pod_cidr=ready,
            unreached=[pb.NodeSubnet(node=node, pod_cidr=cidr) for node, cidr in unreached],
        )
        if message != self._pod_routes:
            self._pod_routes = message
            self._pod_routes_due = True

    @property
    def connected(self) -> bool:
        return self._worker.state.lease.registered

    def _handle(self, *events: Event) -> list[Instruction]:
        instructions = self._worker.handle(*events)
        for instruction in instructions:
            match instruction:
                case RestartSession():
                    self._restart.set()
                case AskPeers():
                    task = asyncio.create_task(self._ask(instruction), name="ask-peers")
                    self._asks.add(task)
                    task.add_done_callback(self._asks.discard)
                case SendNotice():
                    self._notices.append(instruction)
                case SendHeartbeat() if self._outgoing is not None:
                    # Stamped with the wall clock: the master measures how late it reads
                    # its streams by it (master/controllers/read_backlog.py).
                    heartbeat = pb.Heartbeat(
                        sequence=instruction.sequence,
                        plan=instruction.plan,
                        sent_at=self._clock.now(),
                    )
                    self._outgoing.put_nowait(pb.AgentMessage(heartbeat=heartbeat))
                case PlanChanged():
                    log.info(
                        "heartbeat plan %d: every %gs, lease %gs",
                        instruction.number,
                        instruction.heartbeat_seconds,
                        instruction.lease_seconds,
                    )
                    if instruction.sooner:
                        self._beat_sooner.set()
        return instructions

    async def _ask(self, ask: AskPeers) -> None:
        views = (
            await self._witness.ask(ask.peers, ask.timeout, ask.hears_within)
            if self._witness
            else []
        )
        answered = {v.name for v in views}
        views += [PeerView(p.name, False) for p in ask.peers if p.name not in answered]
        self._handle(PeersAnswered(ask.asked_at, tuple(views)))

    async def probe_master(self) -> tuple[bool, float]:
        """For a peer's witness question: whether this node hears the master now, after
        one extra heartbeat answered within the probe wait (or not; agent/fencing.py
        witness_times: in proportion to the lease)."""
        lease = self._worker.state.lease
        if lease.registered and self._outgoing is not None:
            probe_wait = witness_times(lease.lease_seconds).probe_wait
            now = self._clock.monotonic()
            if now - lease.last_heard > probe_wait / 3:
                self._heard.clear()
                if now - self._probe_sent > probe_wait:
                    self._probe_sent = now
                    self._handle(HeartbeatDue(now))
                await wait_event(self._clock, self._heard, probe_wait)
        if not lease.registered:
            return False, -1.0
        return True, self._clock.monotonic() - lease.last_heard

    async def goodbye(self, reason: str, timeout: float = 1.0) -> bool:
        """Tells the master this agent is stopping and will be back; whether it went out."""
        outgoing = self._outgoing
        if outgoing is None:
            return False
        outgoing.put_nowait(pb.AgentMessage(goodbye=pb.Goodbye(reason=reason)))
        sent = asyncio.ensure_future(outgoing.join())
        done = await wait_event(self._clock, self._sent_event(sent), timeout)
        sent.cancel()
        return done

    @staticmethod
    def _sent_event(task: asyncio.Future[None]) -> asyncio.Event:
        event = asyncio.Event()
        task.add_done_callback(lambda _: event.set())
        return event

    async def run(self) -> None:
        """Connects and reconnects forever (until cancelled)."""
        watcher = asyncio.create_task(self._watch_fence(), name="fence-watcher")
        try:
            while True:
                self._outgoing = None
                try:
                    await self._connect_once()
                    error, refused = "the master ended the session", False
                    redirected = False
                    busy = 0.0
                except _Restart:
                    error, refused = "restarting the session after fencing", False
                    redirected = False
                    busy = 0.0
                except Exception as exc:  # any failure means: reconnect
                    error, refused = describe_error(exc)
                    busy = busy_hint(exc)
                    leader = leader_hint(exc)
                    if leader and self._prefer is not None:
                        self._prefer(leader)
                    redirected = error.startswith(NOT_THE_LEADER)
                ended = SessionEnded(
                    self._target,
                    self.connected,
                    error,
                    refused,
                    self._jitter(),
                    redirected,
                    busy,
                )
                for instruction in self._handle(ended):
                    if isinstance(instruction, Reconnect):
                        await self._clock.sleep(instruction.after)
        finally:
            watcher.cancel()
            for task in list(self._asks):
                task.cancel()
            if self._witness is not None:
                await self._witness.close()

    async def _connect_once(self) -> None:
        async with self._channel() as channel:
            stub = node_pb2_grpc.NodeServiceStub(channel)
            await self._worker.wait_observed(timeout=5.0)
            # Back from a fence: stop the stale copies before telling the master we're here.
            await self._worker.wait_fence_cleared(timeout=FENCE_TEARDOWN_WAIT)
            pods = self._outbox.snapshot()
            response = await stub.RegisterNode(
                pb.RegisterNodeRequest(
                    node=node_info_to_proto(self._node), pods=[status_to_proto(p) for p in pods]
                ),
                timeout=REGISTER_TIMEOUT,
            )
            self.session_id = response.session_id
            if self._pod_cidr is not None:
                self._pod_cidr(response.pod_cidr)
            heartbeat = response.heartbeat_interval_seconds or 1.0
            self._handle(
                Registered(self._clock.monotonic(), response.lease_seconds or None, heartbeat)
            )
            self._restart.clear()
            log.info(
                "registered node %s with master %s (session %s, %d pods, heartbeat %gs)",
                self._node.name,
                self._target,
                response.session_id,
                len(pods),
                heartbeat,
            )
            outgoing: asyncio.Queue[pb.AgentMessage] = asyncio.Queue()
            outgoing.put_nowait(
                pb.AgentMessage(
                    hello=pb.SessionHello(
                        node_name=self._node.name,
                        session_id=self.session_id,
                        takes_assignment_changes=True,
                    )
                )
            )

            async def requests() -> AsyncIterator[pb.AgentMessage]:
                while True:
                    message = await outgoing.get()
                    yield message
                    # gRPC asks for the next one once this one is on its way.
                    outgoing.task_done()

            self._outgoing = outgoing
            self._proxy_problems_due = True
            self._pod_routes_due = self._pod_routes is not None
            # The last master may have died or reloaded before storing them.
            self._notices_again = self._notice_log.again(self._clock.monotonic())

            call = stub.StreamSession(requests())
            senders = [
                asyncio.create_task(self._heartbeats(outgoing)),
                asyncio.create_task(self._flush(outgoing)),
                asyncio.create_task(self._receive(call, outgoing)),
            ]
            if self._usage is not None:
                senders.append(asyncio.create_task(self._report_usage(self._usage, outgoing)))
            restart = asyncio.create_task(self._restart.wait())
            try:
                done, _ = await asyncio.wait(
                    [*senders, restart], return_when=asyncio.FIRST_COMPLETED
                )
                if restart in done or self._restart.is_set():
                    raise _Restart()
                for task in done:
                    task.result()
            finally:
                for task in [*senders, restart]:
                    task.cancel()
                if self._logs is not None:
                    self._logs.cancel_all()
                if self._execs is not None:
                    self._execs.cancel_all()
                call.cancel()
                await asyncio.gather(*senders, restart, return_exceptions=True)

    async def _receive(
        self, call: grpc.aio.StreamStreamCall, outgoing: asyncio.Queue[pb.AgentMessage]
    ) -> None:
        def send_log(request_id: str, data: bytes, end: bool, error: str) -> None:
            chunk = pb.LogChunk(request_id=request_id, data=data, end=end, error=error)
            outgoing.put_nowait(pb.AgentMessage(log_chunk=chunk))

        def send_exec(
            request_id: str, stream: int, data: bytes, end: bool, code: int, error: str,
            written: int,
        ) -> None:  # fmt: skip
            out = pb.ExecOutput(
                request_id=request_id, stream=stream, data=data, end=end, exit_code=code,
                error=error, input_done=written,
            )  # fmt: skip
            outgoing.put_nowait(pb.AgentMessage(exec_output=out))

        first = True
        chunks = AssignmentChunks()
        # The set as this session's numbered messages build it (agent/assignment_set.py).
        held: AssignmentSet[PodAssignment] = AssignmentSet()
        async for msg in call:
            # Offered to the state machine first: a message that waited out a freeze or a
            # partition fences, and is dropped with the session.
            if _restarts(self._handle(MasterHeard(self._clock.monotonic()))):
                return
            self._heard.set()
            kind = msg.WhichOneof("body")
            if kind == "assignments":
                assignments = chunks.add(msg.assignments)
                if assignments is not None:
                    held.whole(msg.assignments.sequence, {p.name: p for p in assignments.pods})
                    self._worker.set_assignments(assignments, reset_revision=first)
                    first = False
            elif kind == "assignment_changes":
                changes = msg.assignment_changes
                outcome = held.changes(
                    changes.sequence,
                    {a.name: a for a in map(assignment_from_proto, changes.pods)},
                    [pod_ref(k.namespace, k.name) for k in changes.removed],
                )
                if isinstance(outcome, AskWhole):
                    _ask_whole(outgoing, outcome)
                elif outcome:
                    whole = Assignments(changes.revision, tuple(held.pods.values()))
                    self._worker.set_assignments(whole)
            elif kind == "heartbeat_ack":
                ack = msg.heartbeat_ack
                self._handle(PlanGiven(ack.heartbeat_interval_seconds, ack.lease_seconds, ack.plan))
                if (ask := held.acked(ack.assignment_sequence)) is not None:
                    _ask_whole(outgoing, ask)
            elif kind == "peers":
                peers = tuple(
                    PeerAddress(p.name, p.address, p.witness_port)
                    for p in msg.peers.peers
                    if p.name != self._node.name and p.witness_port > 0
                )
                self._handle(PeersUpdated(peers, msg.peers.cluster_size))
                if self._witness is not None:
                    # Connected now, not when the master goes silent (agent/witness.py).
                    await self._witness.warm(peers)
            elif kind == "log_request" and self._logs is not None:
                self._logs.start(log_order_from_proto(msg.log_request), send_log)
            elif kind == "log_request":
                send_log(msg.log_request.request_id, b"", True, "this agent serves no logs")
            elif kind == "log_cancel" and self._logs is not None:
                self._logs.cancel(msg.log_cancel.request_id)
            elif kind == "resend_reports":
                self._resend(outgoing, msg.resend_reports.reason)
            elif kind == "volume_orders" and self._claims is not None:
                self._claims.set_removals(msg.volume_orders.remove)
            elif kind == "services" and self._services is not None:
                self._services.publish(table_from_proto(msg.services))
            elif kind == "exec_start" and self._execs is not None:
                start = msg.exec_start
                self._execs.start(
                    ExecOrder(
                        start.request_id, pod_ref(start.namespace, start.pod_name),
                        start.container, tuple(start.command),
                        start.stdin, start.tty, start.width, start.height,
                        start.port, start.attach,
                    ),
                    send_exec,
                )  # fmt: skip
            elif kind == "exec_start":
                send_exec(msg.exec_start.request_id, 0, b"", True, 0, "this agent runs no execs", 0)
            elif kind == "exec_input" and self._execs is not None:
                i = msg.exec_input
                self._execs.input(
                    ExecInput(
                        i.request_id,
                        i.data,
                        i.close_stdin,
                        i.width,
                        i.height,
                        i.cancel,
                        i.output_done,
                    )
                )

    def _resend(self, outgoing: asyncio.Queue[pb.AgentMessage], reason: str) -> None:
        """The master asked for every report again (it reloaded its memory from its store,
        and what it had not stored is gone): the whole outbox as one batch, at once and
        ahead of any later change, and the proxy problems, pod routes and recent notices
        with the next flush, as at the start of a session."""
        pods = self._outbox.snapshot()
        log.info(
            "the master asks for every report again (%s): sending %d pod statuses",
            reason[:200] or "no reason given",
            len(pods),
        )
        if pods:
            batch = pb.PodStatusBatch(pods=[status_to_proto(p) for p in pods])
            outgoing.put_nowait(pb.AgentMessage(statuses=batch))
        self._proxy_problems_due = True
        self._pod_routes_due = self._pod_routes is not None
        self._notices_again = self._notice_log.again(self._clock.monotonic())
        self._reports_due.set()

    async def _heartbeats(self, outgoing: asyncio.Queue[pb.AgentMessage]) -> None:
        # The master may change the interval in the session (PlanGiven): a longer one is
        # slept by from the next beat on; a shorter one was confirmed by a heartbeat sent
        # at once (agent/state/lease.py plan_given), and the next beat is due one new
        # interval after that one (agent/state/plan.py next_beat).
        last = self._clock.monotonic()
        self._beat_sooner.clear()
        while True:
            lease = self._worker.state.lease
            wait = next_beat(last, lease.heartbeat_seconds, self._clock.monotonic()) - (
                self._clock.monotonic()
            )
            if wait > 0 and await wait_event(self._clock, self._beat_sooner, wait):
                self._beat_sooner.clear()
                last = self._clock.monotonic()  # the confirming beat just went
                continue
            last = self._clock.monotonic()
            self._handle(HeartbeatDue(last))  # queues SendHeartbeat

    async def _flush(self, outgoing: asyncio.Queue[pb.AgentMessage]) -> None:
        """Sends notices (those sent again first), proxy problems (looked at every
        FLUSH_INTERVAL) and changed pod reports: those as soon as the outbox is updated, at
        most one batch per FLUSH_INTERVAL (agent/outbox.py flush_pause)."""
        last_batch = -FLUSH_INTERVAL
        while True:
            while self._notices_again:
                notice = self._notices_again.pop(0)
                body = pb.NodeNotice(reason=notice.reason, message=notice.message, again=True)
                outgoing.put_nowait(pb.AgentMessage(notice=body))
            while self._notices:
                notice = self._notices.pop(0)
                body = pb.NodeNotice(reason=notice.reason, message=notice.message)
                outgoing.put_nowait(pb.AgentMessage(notice=body))
                self._notice_log.sent(notice, self._clock.monotonic())
            if self._proxy_problems_due:
                self._proxy_problems_due = False
                outgoing.put_nowait(pb.AgentMessage(proxy_problems=self._proxy_problems))
            if self._pod_routes_due and self._pod_routes is not None:
                self._pod_routes_due = False
                outgoing.put_nowait(pb.AgentMessage(pod_routes=self._pod_routes))
            changed = self._outbox.take_changed()
            if changed:
                batch = pb.PodStatusBatch(pods=[status_to_proto(r) for r in changed])
                outgoing.put_nowait(pb.AgentMessage(statuses=batch))
                last_batch = self._clock.monotonic()
            self._reports_due.clear()
            await wait_event(self._clock, self._reports_due, FLUSH_INTERVAL)
            pause = flush_pause(self._clock.monotonic(), last_batch)
            if pause > 0:
                await self._clock.sleep(pause)

    async def _report_usage(
        self, usage: UsageSampler, outgoing: asyncio.Queue[pb.AgentMessage]
    ) -> None:
        # A removed claim volume is reported at once (the master then forgets it).
        removed = self._claims.removed if self._claims is not None else asyncio.Event()
        while True:
            if not removed.is_set():
                # Not amid container starts (agent/usage.py usage_hold says why).
                await hold_for_starts(self._clock, self._worker)
            removed.clear()
            try:
                outgoing.put_nowait(pb.AgentMessage(usage=usage_to_proto(await usage.sample())))
            except Exception as exc:  # an engine that does not answer: no usage this round
                log.debug("measuring usage failed: %s", exc)
            # The plan's interval now: longer or shorter than the registration's.
            every = self._worker.state.lease.heartbeat_seconds
            await wait_event(self._clock, removed, usage_interval(every))

    async def _watch_fence(self) -> None:
        while True:
            await self._clock.sleep(FENCE_TICK)
            self._handle(Tick(self._clock.monotonic()))
