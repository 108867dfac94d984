"""The agent's gRPC session with the master (grpc.aio): register, then one stream.

Per connection: RegisterNode (node info, capacity, and the pods found running,
so a restarted agent's containers are adopted, not replaced), then StreamSession:
a SessionHello first, a Heartbeat every heartbeat_interval_seconds, and a batch of
changed pod statuses at most every ~100 ms (from the StatusOutbox); down come
PodAssignments (the complete set; the newest revision wins) and HeartbeatAcks.
Any error ends the connection; it is retried with exponential backoff and jitter
(0.2 s doubling to 5 s), re-registering each time. One log line per series of
failed attempts, no tracebacks. A watcher applies the fencing rules
(agent/fencing.py) against the time of the last message from the master (acks,
assignments); when it fences, it also restarts the session. Each message received
is checked the same way before it is used, so messages that waited out a freeze
or a partition in a socket buffer fence first and are then dropped with the session.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import AsyncIterator, Callable

import grpc

from agent.convert import assignments_from_proto, node_info_to_proto, status_to_proto
from agent.fencing import FencePolicy, fence_decision
from agent.model import NodeInfo
from agent.outbox import StatusOutbox
from agent.worker import Worker
from kernel.clock import Clock
from kernel.limits import AGENT_CHANNEL_OPTIONS
from protos import node_pb2 as pb
from protos import node_pb2_grpc

log = logging.getLogger("pinnace.agent")

RECONNECT_INITIAL = 0.2
RECONNECT_CAP = 5.0
FLUSH_INTERVAL = 0.1
FENCE_TICK = 0.2
REGISTER_TIMEOUT = 10.0
# How long a re-registration after a fence waits for the teardown (a stuck engine
# must not keep the node away from its master for ever).
FENCE_TEARDOWN_WAIT = 10.0


def describe_error(exc: BaseException) -> tuple[str, bool]:
    """One readable phrase for a connection failure, and whether it was 'connection refused'."""
    if isinstance(exc, grpc.aio.AioRpcError):
        details = exc.details() or ""
        refused = "refused" in details.lower()
        if refused:
            return "connection refused", True
        if exc.code() == grpc.StatusCode.UNAVAILABLE:
            return f"unavailable ({details})", False
        return f"{exc.code().name}: {details}", False
    return str(exc) or type(exc).__name__, False


class _Restart(Exception):
    """The fence watcher asks for a new session (after a freeze)."""


class Session:
    def __init__(
        self,
        target: str,
        node: NodeInfo,
        worker: Worker,
        outbox: StatusOutbox,
        clock: Clock,
        fence: FencePolicy | None = None,
        jitter: Callable[[], float] = random.random,
        channel: Callable[[], grpc.aio.Channel] | None = None,
    ) -> None:
        self._target = target
        self._node = node
        self._worker = worker
        self._outbox = outbox
        self._clock = clock
        self._fence = fence or FencePolicy(enabled=False)
        self._jitter = jitter
        # Builds each connection's channel (mTLS with the current node certificate,
        # agent/join.py); plaintext when not given.
        self._channel = channel or (
            lambda: grpc.aio.insecure_channel(self._target, options=AGENT_CHANNEL_OPTIONS)
        )
        self._lease: float | None = None
        self._last_ack = clock.monotonic()
        self._last_error_refused = False
        self._registered = False
        self._restart = asyncio.Event()
        self.session_id = ""

    @property
    def connected(self) -> bool:
        return self._registered

    async def run(self) -> None:
        """Connects and reconnects forever (until cancelled)."""
        watcher = asyncio.create_task(self._watch_fence(), name="fence-watcher")
        delay = RECONNECT_INITIAL
        failures = 0
        try:
            while True:
                self._registered = False
                try:
                    await self._connect_once()
                    error, refused = "the master ended the session", False
                except _Restart:
                    error, refused = "restarting the session after fencing", False
                except Exception as exc:  # any failure means: reconnect
                    error, refused = describe_error(exc)
                self._last_error_refused = refused
                if self._registered:
                    delay, failures = RECONNECT_INITIAL, 0
                    log.warning(
                        "session with master %s lost: %s; reconnecting", self._target, error
                    )
                else:
                    failures += 1
                    if failures == 1:
                        log.warning(
                            "cannot register with master %s: %s; retrying (every %gs at most)",
                            self._target,
                            error,
                            RECONNECT_CAP,
                        )
                    else:
                        log.debug("attempt %d to reach %s: %s", failures, self._target, error)
                await asyncio.sleep(delay * (0.5 + self._jitter()))
                delay = min(RECONNECT_CAP, delay * 2)
        finally:
            watcher.cancel()

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
            self._registered = True
            self._last_ack = self._clock.monotonic()
            self._last_error_refused = False
            self._lease = response.lease_seconds or None
            self.session_id = response.session_id
            heartbeat = response.heartbeat_interval_seconds or 1.0
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
                    hello=pb.SessionHello(node_name=self._node.name, session_id=self.session_id)
                )
            )

            async def requests() -> AsyncIterator[pb.AgentMessage]:
                while True:
                    yield await outgoing.get()

            call = stub.StreamSession(requests())
            self._restart.clear()
            senders = [
                asyncio.create_task(self._heartbeats(outgoing, heartbeat)),
                asyncio.create_task(self._flush(outgoing)),
                asyncio.create_task(self._receive(call)),
            ]
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
                call.cancel()
                await asyncio.gather(*senders, restart, return_exceptions=True)

    async def _receive(self, call: grpc.aio.StreamStreamCall) -> None:
        first = True
        async for msg in call:
            # Messages that were waiting while we were frozen or cut off are stale: fence
            # first (before the worker acts on them), and take nothing more from this
            # session once a fence asked for a fresh one.
            now = self._clock.monotonic()
            if self._restart.is_set() or self._maybe_fence(now, 0.0):
                return
            kind = msg.WhichOneof("body")
            self._last_ack = now
            if kind == "assignments":
                assignments = assignments_from_proto(msg.assignments)
                if self._worker.set_assignments(assignments, reset_revision=first):
                    log.info(
                        "assignments revision %d: %d pods",
                        assignments.revision,
                        len(assignments.pods),
                    )
                first = False

    async def _heartbeats(self, outgoing: asyncio.Queue[pb.AgentMessage], every: float) -> None:
        sequence = 0
        while True:
            await asyncio.sleep(every)
            # No heartbeat (which would renew the lease) from a session that must fence.
            if self._restart.is_set() or self._maybe_fence(self._clock.monotonic(), 0.0):
                continue
            sequence += 1
            outgoing.put_nowait(pb.AgentMessage(heartbeat=pb.Heartbeat(sequence=sequence)))

    async def _flush(self, outgoing: asyncio.Queue[pb.AgentMessage]) -> None:
        while True:
            changed = self._outbox.take_changed()
            if changed:
                batch = pb.PodStatusBatch(pods=[status_to_proto(r) for r in changed])
                outgoing.put_nowait(pb.AgentMessage(statuses=batch))
            await asyncio.sleep(FLUSH_INTERVAL)

    async def _watch_fence(self) -> None:
        last = self._clock.monotonic()
        while True:
            await asyncio.sleep(FENCE_TICK)
            now = self._clock.monotonic()
            gap, last = now - last, now
            self._maybe_fence(now, gap)

    def _maybe_fence(self, now: float, gap: float) -> bool:
        """Applies the fencing rules now; True when it fenced."""
        verdict = fence_decision(
            self._fence, self._lease, now - self._last_ack, self._last_error_refused, gap
        )
        if verdict is None or (self._worker.fenced and not verdict.frozen):
            return False
        self._worker.fence(verdict.reason)
        # The master has most likely given our session up: start a fresh one, whose
        # assignments lift the fence (once the teardown is under way).
        self._last_ack = now
        self._restart.set()
        return True
