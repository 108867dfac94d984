"""A broken agent session is a suspicion: no new pods there, the lease still decides NotReady."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

from kernel.clock import FakeClock
from master.api.node_servicer import NodeServicer
from master.api.render import render_object
from master.api.tables import rows_for
from master.controllers.manager import ControllerManager
from master.controllers.nodes import LeaseTable
from master.model import Event, Node, NodeStatus, ObjectMeta, Pod, PodSpec, Resources
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
