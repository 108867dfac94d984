"""A small in-test NodeService (the master's side of protos/node.proto) for agent tests.

It records registrations, hellos, heartbeats and every status report, and pushes
assignment sets to connected agents. Other agent test modules import FakeMaster
from here; the tests at the bottom check the fake itself against a raw client.
"""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import grpc

from kernel.clock import Clock
from protos import node_pb2 as pb
from protos import node_pb2_grpc


class FakeMaster(node_pb2_grpc.NodeServiceServicer):
    def __init__(
        self, heartbeat: float = 0.2, lease: float = 5.0, clock: Clock | None = None
    ) -> None:
        self.heartbeat = heartbeat
        self.lease = lease
        # The agents' (fake) clock, if the test gives it: acks are then stamped with it, so
        # the test can tell when an ack is still on its way (tests/unit/test_agent_session.py
        # in_flight).
        self.clock = clock
        # Per node: the sequence of the last heartbeat read from its current stream, and
        # the agents' time at which the last ack to it was queued.
        self.received: dict[str, int] = {}
        self.acked_at: dict[str, float] = {}
        self.ack_heartbeats = True
        # Nodes whose heartbeats are never acknowledged (cut off from the master's side).
        self.deaf: set[str] = set()
        # While set, the master is "hung": no acks and registrations never answer.
        self.hung = asyncio.Event()
        self.registrations: list[pb.RegisterNodeRequest] = []
        # Registrations refused as busy before any goes through, each told to come back in
        # `retry_after` seconds, as the master's admission does (master/api/node_servicer.py).
        self.busy = 0
        self.retry_after = 3.0
        self.refused = 0
        self.hellos: list[pb.SessionHello] = []
        self.heartbeats: list[tuple[str, int]] = []
        # The heartbeat plan each heartbeat said it runs, and a plan (number, interval,
        # lease) the next ack gives.
        self.heartbeat_plans: list[int] = []
        self.next_plan: tuple[int, float, float] | None = None
        self.reports: list[tuple[str, pb.PodStatusReport]] = []
        self.latest: dict[tuple[str, str], pb.PodStatusReport] = {}
        self.batches = 0
        self.notices: list[tuple[str, pb.NodeNotice]] = []
        self.goodbyes: list[tuple[str, pb.Goodbye]] = []
        self.proxy_problems: list[tuple[str, pb.ProxyProblems]] = []
        self.assignments: dict[str, pb.PodAssignments] = {}
        # What acks name as the last assignment message sent (0: none numbered).
        self.assignment_sequence = 0
        self.resyncs: list[tuple[str, pb.AssignmentsResync]] = []
        self._streams: dict[str, asyncio.Queue[pb.MasterMessage]] = {}
        self._revisions = itertools.count(1)
        self._sessions = itertools.count(1)
        self.server: Any = None
        self.address = ""

    async def start(self, address: str = "127.0.0.1:0") -> str:
        """Serves on `address` (port 0: any free port; a fixed one to replace a stopped master)."""
        self.server = grpc.aio.server()
        node_pb2_grpc.add_NodeServiceServicer_to_server(self, self.server)
        port = self.server.add_insecure_port(address)
        await self.server.start()
        self.address = f"127.0.0.1:{port}"
        return self.address

    async def stop(self) -> None:
        if self.server is not None:
            await self.server.stop(grace=None)

    async def RegisterNode(
        self, request: pb.RegisterNodeRequest, context: Any
    ) -> pb.RegisterNodeResponse:
        if self.hung.is_set():
            await asyncio.Event().wait()
        if self.refused < self.busy:
            self.refused += 1
            context.set_trailing_metadata((("retry-after", f"{self.retry_after:.2f}"),))
            await context.abort(grpc.StatusCode.RESOURCE_EXHAUSTED, "busy admitting others")
        self.registrations.append(request)
        return pb.RegisterNodeResponse(
            session_id=f"s{next(self._sessions)}",
            heartbeat_interval_seconds=self.heartbeat,
            lease_seconds=self.lease,
        )

    async def StreamSession(
        self, request_iterator: AsyncIterator[pb.AgentMessage], context: Any
    ) -> AsyncIterator[pb.MasterMessage]:
        first = await anext(aiter(request_iterator))
        assert first.WhichOneof("body") == "hello", first
        node = first.hello.node_name
        self.hellos.append(first.hello)
        self.received[node] = 0  # a new session numbers its heartbeats from 1
        queue: asyncio.Queue[pb.MasterMessage] = asyncio.Queue()
        self._streams[node] = queue
        if node in self.assignments:
            queue.put_nowait(pb.MasterMessage(assignments=self.assignments[node]))

        async def read() -> None:
            async for msg in request_iterator:
                kind = msg.WhichOneof("body")
                if kind == "heartbeat":
                    self.heartbeats.append((node, msg.heartbeat.sequence))
                    self.received[node] = msg.heartbeat.sequence
                    self.heartbeat_plans.append(msg.heartbeat.plan)
                    if self.ack_heartbeats and not self.hung.is_set() and node not in self.deaf:
                        ack = pb.HeartbeatAck(
                            sequence=msg.heartbeat.sequence,
                            assignment_sequence=self.assignment_sequence,
                        )
                        if self.next_plan is not None:
                            ack.plan, ack.heartbeat_interval_seconds, ack.lease_seconds = (
                                self.next_plan
                            )
                            self.next_plan = None
                        queue.put_nowait(pb.MasterMessage(heartbeat_ack=ack))
                        if self.clock is not None:
                            self.acked_at[node] = self.clock.monotonic()
                elif kind == "notice":
                    self.notices.append((node, msg.notice))
                elif kind == "goodbye":
                    self.goodbyes.append((node, msg.goodbye))
                elif kind == "proxy_problems":
                    self.proxy_problems.append((node, msg.proxy_problems))
                elif kind == "assignments_resync":
                    self.resyncs.append((node, msg.assignments_resync))
                elif kind == "statuses":
                    self.batches += 1
                    for report in msg.statuses.pods:
                        self.reports.append((node, report))
                        self.latest[(node, report.pod_name)] = report

        reader = asyncio.create_task(read())
        try:
            while not reader.done():
                getter = asyncio.create_task(queue.get())
                done, _ = await asyncio.wait({getter, reader}, return_when=asyncio.FIRST_COMPLETED)
                if getter in done:
                    yield getter.result()
                else:
                    getter.cancel()
        finally:
            reader.cancel()
            if self._streams.get(node) is queue:
                del self._streams[node]

    def assign(self, node: str, *pods: pb.PodAssignment, sequence: int = 0) -> int:
        revision = next(self._revisions)
        message = pb.PodAssignments(revision=revision, pods=list(pods), sequence=sequence)
        self.assignments[node] = message
        if node in self._streams:
            self._streams[node].put_nowait(pb.MasterMessage(assignments=message))
        return revision

    def send_changes(
        self, node: str, sequence: int, pods: list[pb.PodAssignment], removed: list[str]
    ) -> None:
        """Pushes assignment changes (numbered `sequence`) to a connected node."""
        message = pb.PodAssignmentChanges(
            sequence=sequence,
            revision=next(self._revisions),
            pods=pods,
            removed=[pb.PodKey(name=name) for name in removed],
        )
        self._streams[node].put_nowait(pb.MasterMessage(assignment_changes=message))

    def send_peers(self, node: str, peers: list[pb.Peer], cluster_size: int) -> None:
        """Pushes a peer list to a connected node."""
        message = pb.PeerList(peers=peers, cluster_size=cluster_size)
        self._streams[node].put_nowait(pb.MasterMessage(peers=message))

    def offer_plan(self, node: str, number: int, interval: float, lease: float) -> None:
        """A plan offered between heartbeats, as the master offers a shrink: an ack of the
        last heartbeat read, carrying the plan (master/controllers/shrink_offers.py)."""
        ack = pb.HeartbeatAck(
            sequence=self.received.get(node, 0),
            assignment_sequence=self.assignment_sequence,
            plan=number,
            heartbeat_interval_seconds=interval,
            lease_seconds=lease,
        )
        self._streams[node].put_nowait(pb.MasterMessage(heartbeat_ack=ack))

    def ask_resend(self, node: str) -> None:
        """Asks a connected node for every report again (a master that reloaded its memory)."""
        message = pb.ResendReports(reason="the master reloaded its memory from the store")
        self._streams[node].put_nowait(pb.MasterMessage(resend_reports=message))

    def connected(self, node: str) -> bool:
        return node in self._streams

    def status(self, node: str, pod: str) -> pb.PodStatusReport | None:
        return self.latest.get((node, pod))


def web_assignment(
    name: str,
    image: str,
    *,
    epoch: int = 1,
    stop: bool = False,
    env: dict[str, str] | None = None,
    host_port: int = 0,
    grace: int = 2,
) -> pb.PodAssignment:
    return pb.PodAssignment(
        name=name,
        epoch=epoch,
        labels={"app": "web"},
        owner="deployment/web",
        stop=stop,
        spec=pb.PodSpec(
            restart_policy="Always",
            termination_grace_period_seconds=grace,
            containers=[
                pb.ContainerSpec(
                    name="web",
                    image=image,
                    env=[pb.EnvVar(name=k, value=v) for k, v in (env or {}).items()],
                    ports=[
                        pb.ContainerPort(container_port=80, protocol="TCP", host_port=host_port)
                    ],
                )
            ],
        ),
    )


async def eventually(
    predicate: Callable[[], Any], timeout: float = 10.0, what: str = "condition"
) -> Any:
    """Polls until `predicate()` is truthy; returns its value or fails naming `what`."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        await asyncio.sleep(0.05)


def test_fake_master_registers_acks_and_pushes_assignments() -> None:
    async def scenario() -> None:
        master = FakeMaster()
        address = await master.start()
        try:
            async with grpc.aio.insecure_channel(address) as channel:
                stub = node_pb2_grpc.NodeServiceStub(channel)
                response = await stub.RegisterNode(
                    pb.RegisterNodeRequest(node=pb.NodeInfo(name="raw"))
                )
                outgoing: asyncio.Queue[pb.AgentMessage] = asyncio.Queue()
                outgoing.put_nowait(
                    pb.AgentMessage(
                        hello=pb.SessionHello(node_name="raw", session_id=response.session_id)
                    )
                )
                outgoing.put_nowait(pb.AgentMessage(heartbeat=pb.Heartbeat(sequence=1)))

                async def requests() -> AsyncIterator[pb.AgentMessage]:
                    while True:
                        yield await outgoing.get()

                call = stub.StreamSession(requests())
                first = await call.read()
                await eventually(lambda: master.connected("raw"), what="stream")
                master.assign("raw", web_assignment("p", "img"))
                second = await call.read()
                call.cancel()
        finally:
            await master.stop()

        assert response.lease_seconds == master.lease
        assert first.heartbeat_ack.sequence == 1
        assert [p.name for p in second.assignments.pods] == ["p"]

    asyncio.run(scenario())
