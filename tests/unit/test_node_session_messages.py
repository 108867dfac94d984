"""What an agent's session carries besides pods: acks, peers, goodbyes and notices.

The NodeServicer is driven directly (fake clock, MemoryStore, no sockets): an
agent that stops reading costs the master one pending ack, not one per
heartbeat; every agent is told its peers (its witnesses) when its session
starts and when the cluster changes; a goodbye gives the node its grace; a
notice is a node event whose text cannot reach a terminal raw.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import replace
from typing import Any

from kernel.clock import FakeClock
from master.api.node_servicer import NodeServicer
from master.controllers.manager import ControllerManager
from master.controllers.nodes import LeaseTable
from master.model import NODE_NOT_READY, Event, Node
from master.state import ClusterState
from master.store import MemoryStore
from protos import node_pb2


def _setup() -> tuple[FakeClock, ClusterState, LeaseTable, NodeServicer]:
    clock = FakeClock()
    state = ClusterState(MemoryStore(), clock)
    leases = LeaseTable()
    manager = ControllerManager(state, clock, leases)
    return clock, state, leases, NodeServicer(state, leases, manager, clock, 1.0, 3.0)


def _register(servicer: NodeServicer, name: str, witness_port: int = 0) -> str:
    return asyncio.run(_aregister(servicer, name, witness_port))


async def _aregister(servicer: NodeServicer, name: str, witness_port: int = 0) -> str:
    info = node_pb2.NodeInfo(
        name=name,
        address=f"10.0.0.{len(name)}",
        capacity=node_pb2.Resources(cpu_millis=2000, memory_bytes=2**30),
        allocatable=node_pb2.Resources(cpu_millis=2000, memory_bytes=2**30),
        witness_port=witness_port,
    )
    context: Any = None
    reply = await servicer.RegisterNode(node_pb2.RegisterNodeRequest(node=info), context)
    return reply.session_id


class _Agent:
    """An agent's side of one session: messages go up through a queue."""

    def __init__(self, servicer: NodeServicer, name: str, session_id: str) -> None:
        self.up: asyncio.Queue[node_pb2.AgentMessage | None] = asyncio.Queue()
        self.up.put_nowait(
            node_pb2.AgentMessage(
                hello=node_pb2.SessionHello(node_name=name, session_id=session_id)
            )
        )
        context: Any = None
        self.down: Any = servicer.StreamSession(self._messages(), context)

    async def _messages(self) -> AsyncIterator[node_pb2.AgentMessage]:
        while (msg := await self.up.get()) is not None:
            yield msg

    async def next(self, body: str, timeout: float = 2.0) -> Any:
        async def wanted() -> Any:
            while (msg := await anext(self.down)).WhichOneof("body") != body:
                pass
            return getattr(msg, body)

        return await asyncio.wait_for(wanted(), timeout)

    async def close(self) -> None:
        self.up.put_nowait(None)
        await self.down.aclose()


def test_an_agent_that_stops_reading_leaves_one_ack_pending_not_one_per_heartbeat() -> None:
    _, _, _, servicer = _setup()
    session_id = _register(servicer, "n1")

    async def scenario() -> list[int]:
        agent = _Agent(servicer, "n1", session_id)
        await agent.next("assignments")
        for seq in range(1, 5001):  # heartbeats arrive; nobody reads the replies
            agent.up.put_nowait(node_pb2.AgentMessage(heartbeat=node_pb2.Heartbeat(sequence=seq)))
        # The session reads a message and handles it in one step: all 5,000 are handled.
        while not agent.up.empty():
            await asyncio.sleep(0)
        acks = [(await agent.next("heartbeat_ack")).sequence]
        # A marker, not a quiet spell: one more heartbeat, whose ack comes after any other
        # ack still pending (a timeout of 0.2 s said nothing of one sent later).
        agent.up.put_nowait(node_pb2.AgentMessage(heartbeat=node_pb2.Heartbeat(sequence=5001)))
        while acks[-1] != 5001:
            acks.append((await agent.next("heartbeat_ack")).sequence)
        await agent.close()
        return acks

    assert asyncio.run(scenario()) == [5000, 5001]


def test_agents_are_told_their_peers_at_the_start_and_when_the_cluster_changes() -> None:
    clock, _, _, servicer = _setup()
    session_id = _register(servicer, "n1", witness_port=7401)
    _register(servicer, "n22", witness_port=7402)

    async def scenario() -> tuple[Any, Any]:
        agent = _Agent(servicer, "n1", session_id)
        first = await agent.next("peers")
        await _aregister(servicer, "n333", witness_port=7403)
        # Changes within a second of the last broadcast wait for the rest of the second.
        while not clock.sleepers:
            await asyncio.sleep(0.01)
        clock.advance(1.0)
        second = await agent.next("peers")
        await agent.close()
        return first, second

    first, second = asyncio.run(scenario())

    assert [(p.name, p.address, p.witness_port) for p in first.peers] == [("n22", "10.0.0.3", 7402)]
    assert first.cluster_size == 2
    assert [p.name for p in second.peers] == ["n22", "n333"] and second.cluster_size == 3


def test_a_goodbye_starts_the_grace_and_a_new_registration_ends_it() -> None:
    clock, state, leases, servicer = _setup()
    session_id = _register(servicer, "n1")

    async def scenario() -> None:
        agent = _Agent(servicer, "n1", session_id)
        await agent.next("assignments")
        agent.up.put_nowait(node_pb2.AgentMessage(goodbye=node_pb2.Goodbye(reason="SIGTERM")))
        while leases.goodbye_at("n1") is None:
            await asyncio.sleep(0.01)
        await agent.close()

    asyncio.run(asyncio.wait_for(scenario(), 5))

    assert leases.goodbye_at("n1") == clock.monotonic()
    (event,) = [
        e for e in state.objects("Event") if isinstance(e, Event) and e.reason == "NodeRestarting"
    ]
    assert "will be back (SIGTERM)" in event.message
    _register(servicer, "n1")
    assert leases.goodbye_at("n1") is None


def test_a_notice_is_a_node_event_without_control_characters() -> None:
    _, state, _, servicer = _setup()
    session_id = _register(servicer, "n1")
    notice = node_pb2.NodeNotice(
        reason="Master\x1b[2JUnreachable", message="kept pods\x1b]0;pwned\x07 running"
    )

    async def scenario() -> None:
        agent = _Agent(servicer, "n1", session_id)
        await agent.next("assignments")
        agent.up.put_nowait(node_pb2.AgentMessage(notice=notice))
        while not any(
            isinstance(e, Event) and e.involved_kind == "Node" and e.source == "n1"
            for e in state.objects("Event")
        ):
            await asyncio.sleep(0.01)
        await agent.close()

    asyncio.run(asyncio.wait_for(scenario(), 5))

    (event,) = [e for e in state.objects("Event") if isinstance(e, Event) and e.source == "n1"]
    assert event.reason == "Master2JUnreachable"
    assert "\x1b" not in event.message and "\x07" not in event.message
    assert event.message.startswith("kept pods")


def test_a_dead_node_is_neither_listed_nor_counted_as_a_witness() -> None:
    _, state, _, servicer = _setup()
    session_id = _register(servicer, "n1", witness_port=7401)
    _register(servicer, "n22", witness_port=7402)
    node = state.get("Node", "n22")
    assert isinstance(node, Node)
    # NotReady with no pods left: its machine died and its pods were replaced.
    dead = replace(node, status=replace(node.status, ready=False, reason=NODE_NOT_READY))
    state.put(dead)

    async def scenario() -> Any:
        agent = _Agent(servicer, "n1", session_id)
        peers = await agent.next("peers")
        await agent.close()
        return peers

    peers = asyncio.run(scenario())

    assert list(peers.peers) == [] and peers.cluster_size == 1


def test_a_join_after_the_head_of_a_large_cluster_does_not_rebuild_the_peers_a_session_gets() -> (
    None
):
    _, _, _, servicer = _setup()
    for i in range(40):
        _register(servicer, f"n{i:02d}", witness_port=7401)
    rows, size = servicer._witnesses()

    _register(servicer, "n99", witness_port=7401)  # sorts after the 33 rows told
    kept, kept_size = servicer._witnesses(fresh=False)
    _register(servicer, "a00", witness_port=7401)  # sorts first: every list changes
    rebuilt, rebuilt_size = servicer._witnesses(fresh=False)
    fresh, fresh_size = servicer._witnesses()

    assert kept is rows and kept_size == size == 40
    assert rebuilt[0][0] == "a00" and rebuilt_size == 42
    assert fresh == rebuilt and fresh_size == 42
