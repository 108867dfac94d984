"""A node's session holds nothing of its pods between two sends.

A session is a generator that lives as long as the agent's connection; what its frame's
locals hold while it waits for the next change stays alive that long. It held the pods
it last sent (their old versions, once their status changed) and the assignment set
twice in protobuf, 5.8 KiB a pod: ~280 MiB at 5,000 nodes / 50,000 pods
(tests/bench/session_retention.py). The reader held the agent's last status report.
These drive the NodeServicer directly (fake clock, MemoryStore, no sockets) and look at
what the waiting session's frames hold.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

from google.protobuf.message import Message

from kernel.clock import FakeClock
from master.api.node_servicer import NodeServicer
from master.controllers.manager import ControllerManager
from master.controllers.nodes import LeaseTable
from master.model import Container, ObjectMeta, Pod, PodPhase, PodSpec
from master.state import ClusterState
from master.store import MemoryStore
from protos import node_pb2


def _held(frame: Any) -> list[object]:
    """The frame's locals, and what the containers among them hold."""
    found: list[object] = []
    for value in frame.f_locals.values():
        found.append(value)
        if isinstance(value, (list, tuple, set, frozenset)):
            found.extend(value)
        elif isinstance(value, dict):
            found.extend(value.values())
    return found


def _pod_messages(held: list[object]) -> list[object]:
    """Protobuf messages that carry pods (assignments or status reports)."""
    kinds = (node_pb2.PodAssignments, node_pb2.PodAssignment, node_pb2.PodStatusReport)
    return [
        m
        for m in held
        if isinstance(m, kinds)
        or (isinstance(m, node_pb2.MasterMessage) and m.HasField("assignments"))
        or (isinstance(m, node_pb2.AgentMessage) and m.HasField("statuses"))
        or (isinstance(m, Message) and m.DESCRIPTOR.name == "PodStatusBatch")
    ]


def test_a_waiting_session_holds_neither_the_pods_it_sent_nor_their_messages() -> None:
    clock = FakeClock()
    state = ClusterState(MemoryStore(), clock)
    leases = LeaseTable()
    servicer = NodeServicer(state, leases, ControllerManager(state, clock, leases), clock, 1, 3)
    room = node_pb2.Resources(cpu_millis=2000, memory_bytes=2**30)
    info = node_pb2.NodeInfo(name="n1", address="127.0.0.1", capacity=room, allocatable=room)
    spec = PodSpec(containers=(Container(name="c", image="nginx"),))
    for name in ("p1", "p2"):
        state.put(Pod(meta=ObjectMeta(name=name), spec=spec, node_name="n1", epoch=1))
    up: asyncio.Queue[node_pb2.AgentMessage] = asyncio.Queue()

    async def messages() -> AsyncIterator[node_pb2.AgentMessage]:
        while True:
            msg = await up.get()
            yield msg
            del msg

    async def scenario() -> tuple[list[object], list[object], list[Pod]]:
        context: Any = None
        reply = await servicer.RegisterNode(node_pb2.RegisterNodeRequest(node=info), context)
        hello = node_pb2.SessionHello(node_name="n1", session_id=reply.session_id)
        up.put_nowait(node_pb2.AgentMessage(hello=hello))
        session: Any = servicer.StreamSession(messages(), context)
        while (await anext(session)).WhichOneof("body") != "assignments":
            pass
        waiting = asyncio.ensure_future(anext(session))  # on to its wait for a change
        # The agent reports both Running (a status change: nothing is sent again), then
        # beats, as it does within seconds.
        sent = [p for p in state.pods() if p.status.phase == PodPhase.PENDING]
        report = node_pb2.PodStatusBatch(
            pods=[
                node_pb2.PodStatusReport(pod_name=p.meta.name, epoch=1, phase="Running")
                for p in sent
            ]
        )
        up.put_nowait(node_pb2.AgentMessage(statuses=report))
        up.put_nowait(node_pb2.AgentMessage(heartbeat=node_pb2.Heartbeat(sequence=1)))
        while not up.empty() or any(p.status.phase != PodPhase.RUNNING for p in state.pods()):
            await asyncio.sleep(0)
        await asyncio.sleep(0)
        frame = session.ag_frame
        reader = frame.f_locals["reader"].get_coro()
        held = _held(frame)
        read = _held(reader.cr_frame)
        waiting.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await waiting
        return held, read, sent

    held, read, sent = asyncio.run(scenario())

    assert len(sent) == 2  # the pods were bound and sent
    assert not [o for o in held if isinstance(o, Pod)], "the session holds pods it sent"
    assert not _pod_messages(held), "the session holds the assignment messages it sent"
    assert not _pod_messages(read), "the session's reader holds the agent's last report"
