"""A node's assignment set goes in bounded chunks and the agent puts it back together.

25 replicas of a 200 KB template on one node are a legal cluster; as one message
that is 5 MB, above gRPC's 4 MiB default. The master's session (driven directly,
MemoryStore, fake clock) must send no message beyond the chunk size plus one pod,
and the agent's reassembly must give back exactly the set.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

from agent.convert import AssignmentChunks
from kernel.clock import FakeClock
from master.api.convert import CHUNK_BYTES, chunk_assignments
from master.api.node_servicer import NodeServicer
from master.controllers.manager import ControllerManager
from master.controllers.nodes import LeaseTable
from master.model import Container, EnvVar, ObjectMeta, Pod, PodSpec
from master.state import ClusterState
from master.store import MemoryStore
from protos import node_pb2

KB = 1000


def _big_pods(state: ClusterState, n: int) -> None:
    blob = Container(name="web", image="nginx:1", env=(EnvVar("BLOB", "x" * 200 * KB),))
    for i in range(n):
        state.put(
            Pod(
                meta=ObjectMeta(name=f"web-{i:02}"),
                spec=PodSpec(containers=(blob,)),
                node_name="n1",
                epoch=10 + i,
            )
        )


def test_chunks_are_bounded_and_reassemble_to_the_whole_set() -> None:
    pods = [node_pb2.PodAssignment(name=f"p{i}", epoch=i + 1) for i in range(10)]
    whole = node_pb2.PodAssignments(revision=7, pods=pods)

    chunks = chunk_assignments(whole, limit=3 * pods[0].ByteSize())
    collector = AssignmentChunks()
    results = [collector.add(c) for c in chunks]

    assert [len(c.pods) for c in chunks] == [3, 3, 3, 1]
    assert [c.more for c in chunks] == [True, True, True, False]
    assert results[:-1] == [None, None, None]
    final = results[-1]
    assert final is not None and final.revision == 7
    assert [p.name for p in final.pods] == [f"p{i}" for i in range(10)]


def test_a_chunk_of_a_newer_revision_starts_over() -> None:
    collector = AssignmentChunks()
    stale = node_pb2.PodAssignments(revision=1, pods=[node_pb2.PodAssignment(name="old")])
    stale.more = True
    fresh = node_pb2.PodAssignments(revision=2, pods=[node_pb2.PodAssignment(name="new")])

    assert collector.add(stale) is None
    result = collector.add(fresh)

    assert result is not None and [p.name for p in result.pods] == ["new"]


def test_a_node_with_25_pods_of_200_kb_gets_them_in_messages_of_bounded_size() -> None:
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
    _big_pods(state, 25)

    async def session() -> list[node_pb2.PodAssignments]:
        hold = asyncio.Event()

        async def messages() -> AsyncIterator[node_pb2.AgentMessage]:
            hello = node_pb2.SessionHello(node_name="n1", session_id=reply.session_id)
            yield node_pb2.AgentMessage(hello=hello)
            await hold.wait()

        stream: Any = servicer.StreamSession(messages(), context)
        got: list[node_pb2.PodAssignments] = []
        while not got or got[-1].more:
            msg = await asyncio.wait_for(anext(stream), 5)
            if msg.WhichOneof("body") == "assignments":
                got.append(msg.assignments)
        hold.set()
        await stream.aclose()
        return got

    chunks = asyncio.run(session())
    collector = AssignmentChunks()
    whole = [collector.add(c) for c in chunks][-1]

    assert len(chunks) >= 2
    assert max(c.ByteSize() for c in chunks) <= CHUNK_BYTES + 250 * KB
    assert whole is not None and len(whole.pods) == 25
