"""A broken agent session is a suspicion: no new pods there, the lease still decides NotReady."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import replace
from typing import Any

from kernel.clock import FakeClock
from master.api.node_servicer import NodeServicer
from master.api.render import render_object
from master.api.tables import rows_for
from master.controllers.manager import ControllerManager
from master.controllers.nodes import LeaseTable
from master.model import Event, Node, NodeStatus, ObjectMeta, Pod, PodPhase, PodSpec, Resources
from master.scheduler import Unschedulable, build_node_infos, schedule
from master.state import ClusterState
from master.store import MemoryStore
from protos import node_pb2


def _node(lost_at: float) -> Node:
    return Node(
        meta=ObjectMeta(name="n1"),
        address="127.0.0.1",
        capacity=Resources(2000, 2**30),
        allocatable=Resources(2000, 2**30),
        status=NodeStatus(ready=True, session_lost_at=lost_at),
    )


def test_a_disconnected_node_takes_no_new_pods_and_says_why() -> None:
    pod = Pod(meta=ObjectMeta(name="p"), spec=PodSpec(containers=()))

    result = schedule(pod, build_node_infos([_node(lost_at=5.0)], []))

    assert isinstance(result, Unschedulable)
    assert "disconnected" in result.message


def test_get_nodes_shows_a_disconnected_but_ready_node() -> None:
    rendered = render_object(_node(lost_at=5.0), 10.0)

    (row,) = rows_for("Node", [rendered], wide=False, now=10.0)

    assert row[1] == "Ready,Disconnected"
    connected = render_object(_node(lost_at=0.0), 10.0)
    assert rows_for("Node", [connected], wide=False, now=10.0)[0][1] == "Ready"


async def _session(servicer: NodeServicer, session_id: str) -> None:
    async def messages() -> AsyncIterator[node_pb2.AgentMessage]:
        hello = node_pb2.SessionHello(node_name="n1", session_id=session_id)
        yield node_pb2.AgentMessage(hello=hello)

    context: Any = None  # a valid session never touches the context
    async for _ in servicer.StreamSession(messages(), context):
        pass


def _registered_node() -> tuple[FakeClock, ClusterState, NodeServicer, node_pb2.NodeInfo, str]:
    """A servicer on a fake clock with node n1 registered; the session id it was given."""
    clock = FakeClock()
    state = ClusterState(MemoryStore(), clock)
    leases = LeaseTable()
    servicer = NodeServicer(state, leases, ControllerManager(state, clock, leases), clock, 1, 3)
    info = node_pb2.NodeInfo(
        name="n1",
        address="127.0.0.1",
        capacity=node_pb2.Resources(cpu_millis=2000, memory_bytes=2**30),
        allocatable=node_pb2.Resources(cpu_millis=2000, memory_bytes=2**30),
    )
    context: Any = None
    reply = asyncio.run(servicer.RegisterNode(node_pb2.RegisterNodeRequest(node=info), context))
    return clock, state, servicer, info, reply.session_id


def test_the_end_of_a_session_marks_the_node_until_the_agent_registers_again() -> None:
    clock, state, servicer, info, session_id = _registered_node()

    asyncio.run(_session(servicer, session_id))

    node = state.get("Node", "n1")
    assert isinstance(node, Node) and node.status.session_lost_at == clock.now()
    assert any(
        isinstance(e, Event) and e.reason == "NodeSessionLost" for e in state.objects("Event")
    )
    context: Any = None
    asyncio.run(servicer.RegisterNode(node_pb2.RegisterNodeRequest(node=info), context))
    node = state.get("Node", "n1")
    assert isinstance(node, Node) and node.status.session_lost_at == 0.0


def test_sessions_the_stopping_master_ends_do_not_mark_their_nodes() -> None:
    _, state, servicer, _, session_id = _registered_node()

    servicer.stopping()
    asyncio.run(_session(servicer, session_id))

    node = state.get("Node", "n1")
    assert isinstance(node, Node) and node.status.session_lost_at == 0.0
    assert not any(
        isinstance(e, Event) and e.reason == "NodeSessionLost" for e in state.objects("Event")
    )


def test_an_ended_session_is_remembered_until_the_agent_registers_again() -> None:
    clock, _, servicer, info, session_id = _registered_node()
    leases = servicer._leases

    asyncio.run(_session(servicer, session_id))
    assert leases.ended_at("n1") == clock.monotonic()

    context: Any = None
    asyncio.run(servicer.RegisterNode(node_pb2.RegisterNodeRequest(node=info), context))
    assert leases.ended_at("n1") is None


async def _beat_once(
    servicer: NodeServicer, session_id: str, plan: int = 0
) -> list[node_pb2.HeartbeatAck]:
    """A session that sends one heartbeat (saying it runs `plan`; 0: an older agent's,
    which says none) and ends once it is acknowledged."""
    acked = asyncio.Event()

    async def messages() -> AsyncIterator[node_pb2.AgentMessage]:
        hello = node_pb2.SessionHello(node_name="n1", session_id=session_id)
        yield node_pb2.AgentMessage(hello=hello)
        yield node_pb2.AgentMessage(heartbeat=node_pb2.Heartbeat(sequence=1, plan=plan))
        await acked.wait()

    acks = []
    context: Any = None
    async for msg in servicer.StreamSession(messages(), context):
        if msg.WhichOneof("body") == "heartbeat_ack":
            acks.append(msg.heartbeat_ack)
            acked.set()
    return acks


def test_a_grown_cluster_stretches_an_early_nodes_heartbeat_with_its_ack() -> None:
    clock = FakeClock()
    state = ClusterState(MemoryStore(), clock)
    leases = LeaseTable()
    manager = ControllerManager(state, clock, leases)
    # At most 5 beats a second in all: 1 s / 3 s up to 5 nodes, 2 s / 4 s at 10.
    servicer = NodeServicer(state, leases, manager, clock, 1, 3, max_heartbeat_rate=5)
    info = node_pb2.NodeInfo(name="n1", address="127.0.0.1")
    context: Any = None
    reply = asyncio.run(servicer.RegisterNode(node_pb2.RegisterNodeRequest(node=info), context))
    assert (reply.heartbeat_interval_seconds, reply.lease_seconds) == (1.0, 3.0)
    for i in range(2, 11):
        state.put(replace(_node(0.0), meta=ObjectMeta(name=f"n{i}")))

    async def twice() -> list[node_pb2.HeartbeatAck]:
        return [
            *await _beat_once(servicer, reply.session_id),
            *await _beat_once(servicer, reply.session_id),
        ]

    ack, again = asyncio.run(twice())

    assert (ack.heartbeat_interval_seconds, ack.lease_seconds) == (2.0, 4.0)
    assert leases.lease_of("n1") == 4.0
    assert (again.heartbeat_interval_seconds, again.lease_seconds) == (0.0, 0.0)  # told once


class _Refused(Exception):
    pass


class _Context:
    """The part of a servicer context a refused registration touches."""

    def __init__(self) -> None:
        self.trailers: tuple[tuple[str, str], ...] = ()
        self.code: Any = None

    def set_trailing_metadata(self, trailers: tuple[tuple[str, str], ...]) -> None:
        self.trailers = trailers

    async def abort(self, code: Any, details: str) -> None:
        self.code = code
        raise _Refused(details)


def test_registrations_beyond_the_limit_are_told_when_to_come_back() -> None:
    from master.pki.admission import JoinAdmission

    clock = FakeClock()
    state = ClusterState(MemoryStore(), clock)
    leases = LeaseTable()
    registrations = JoinAdmission(limit=1, noun="registrations")
    joining = {"n3"}
    servicer = NodeServicer(
        state,
        leases,
        ControllerManager(state, clock, leases),
        clock,
        1,
        3,
        joining=joining.__contains__,
        registrations=registrations,
    )

    def info(name: str) -> node_pb2.NodeInfo:
        res = node_pb2.Resources(cpu_millis=2000, memory_bytes=2**30)
        return node_pb2.NodeInfo(name=name, address="127.0.0.1", capacity=res, allocatable=res)

    async def register(name: str, context: Any = None) -> node_pb2.RegisterNodeResponse:
        return await servicer.RegisterNode(node_pb2.RegisterNodeRequest(node=info(name)), context)

    first = asyncio.run(register("n1"))  # holds the one slot until its session starts
    refused = _Context()
    try:
        asyncio.run(register("n2", refused))
        raise AssertionError("n2 was admitted beyond the limit")
    except _Refused as e:
        assert "busy admitting other registrations (at most 1 at a time)" in str(e)
    assert refused.code is not None and refused.code.name == "RESOURCE_EXHAUSTED"
    assert float(dict(refused.trailers)["retry-after"]) > 0
    assert state.get("Node", "n2") is None  # nothing half-applied
    assert asyncio.run(register("n3")).session_id  # its join holds a slot already

    asyncio.run(_session_of(servicer, "n1", first.session_id))  # its first sets went out
    assert asyncio.run(register("n2")).session_id


async def _session_of(servicer: NodeServicer, name: str, session_id: str) -> None:
    async def messages() -> AsyncIterator[node_pb2.AgentMessage]:
        yield node_pb2.AgentMessage(
            hello=node_pb2.SessionHello(node_name=name, session_id=session_id)
        )

    context: Any = None
    async for _ in servicer.StreamSession(messages(), context):
        pass


def test_a_pods_status_alone_does_not_resend_its_nodes_assignments() -> None:
    # Re-sending a node's whole set for each report of its pods was O(pods on the node) per
    # report; the set is made of everything but the status.
    clock, state, servicer, _, _ = _registered_node()
    dirty = servicer._sessions["n1"].dirty
    pod = state.put(Pod(meta=ObjectMeta(name="p"), spec=PodSpec(containers=()), node_name="n1"))
    assert dirty.is_set()
    dirty.clear()

    running = state.put(
        replace(pod, status=replace(pod.status, phase=PodPhase.RUNNING, ready=True))
    )
    assert not dirty.is_set()

    state.put(replace(running, epoch=running.epoch + 1))
    assert dirty.is_set()
    dirty.clear()
    state.put(replace(running, deletion_requested_at=clock.now() + 1))
    assert dirty.is_set()
    dirty.clear()
    state.remove("Pod", "p")
    assert dirty.is_set()
