"""An agent that takes assignment changes is sent what changed, and always ends up with the
exact set the master would have sent whole (master/app/assignment_feed.py on the master's
side, agent/assignment_set.py on the agent's).

The NodeServicer is driven directly (fake clock, MemoryStore, no sockets), as in
test_node_session_messages. The agent's side here is the agent's own AssignmentSet, fed
as agent/session.py feeds it. The random test runs seeded sequences of binds, changes,
stop orders held back and let go, deletions, moves to another node, Service changes,
reloads, reconnects and messages lost on the way, and after each step compares the set
the agent built with the master's whole set.
"""

from __future__ import annotations

import asyncio
import random
from dataclasses import replace
from typing import Any

from agent.assignment_set import AskWhole, AssignmentSet
from kernel.names import pod_ref
from master.api.convert import assignments_to_proto
from master.api.node_servicer import NodeServicer
from master.app.assignment_feed import AssignmentFeed, SendChanges, SendWhole
from master.model import (
    Container,
    ObjectMeta,
    Pod,
    PodSpec,
    Service,
    ServicePort,
)
from master.state import ClusterState
from protos import node_pb2
from tests.unit.test_node_session_messages import _aregister, _setup

NODE = "n1"


class _ChangesAgent:
    """One session of an agent that takes changes, as agent/session.py is: the set built
    with AssignmentSet, a resync asked for when it says so; `lose` drops the next
    assignment message on the way (as if it never came)."""

    def __init__(self, servicer: NodeServicer, session_id: str, takes_changes: bool = True):
        self.up: asyncio.Queue[node_pb2.AgentMessage | None] = asyncio.Queue()
        hello = node_pb2.SessionHello(
            node_name=NODE, session_id=session_id, takes_assignment_changes=takes_changes
        )
        self.up.put_nowait(node_pb2.AgentMessage(hello=hello))
        self.held: AssignmentSet[node_pb2.PodAssignment] = AssignmentSet()
        self.lose = 0
        self.acks: dict[int, int] = {}
        self.received: list[node_pb2.MasterMessage] = []
        context: Any = None
        self._down = servicer.StreamSession(self._messages(), context)
        self._reader = asyncio.create_task(self._read())
        self._beat = 0

    async def _messages(self) -> Any:
        while (msg := await self.up.get()) is not None:
            yield msg

    async def _read(self) -> None:
        async for msg in self._down:
            kind = msg.WhichOneof("body")
            if kind in ("assignments", "assignment_changes") and self.lose:
                self.lose -= 1
                continue
            self.received.append(msg)
            if kind == "assignments":
                whole = msg.assignments
                assert not whole.more
                self.held.whole(whole.sequence, {_ref(p): p for p in whole.pods})
            elif kind == "assignment_changes":
                changes = msg.assignment_changes
                outcome = self.held.changes(
                    changes.sequence,
                    {_ref(p): p for p in changes.pods},
                    [pod_ref(k.namespace, k.name) for k in changes.removed],
                )
                self._asked(outcome)
            elif kind == "heartbeat_ack":
                ack = msg.heartbeat_ack
                self.acks[ack.sequence] = ack.assignment_sequence
                self._asked(self.held.acked(ack.assignment_sequence))

    def _asked(self, outcome: AskWhole | bool | None) -> None:
        if isinstance(outcome, AskWhole):
            resync = node_pb2.AssignmentsResync(sequence=outcome.sequence, reason=outcome.reason)
            self.up.put_nowait(node_pb2.AgentMessage(assignments_resync=resync))

    async def settle(self) -> None:
        """Until everything the master had to send has come, a resync asked for answered:
        two heartbeats acked one after the other (an ack goes before the assignments of its
        turn of the session's loop), again while a whole set is asked for."""
        while True:
            for _ in range(2):
                self._beat += 1
                beat = node_pb2.Heartbeat(sequence=self._beat)
                self.up.put_nowait(node_pb2.AgentMessage(heartbeat=beat))
                while self._beat not in self.acks:
                    await asyncio.sleep(0)
            if self.held.asked is None:
                return

    async def close(self) -> None:
        self.up.put_nowait(None)
        await self._reader


def _ref(p: node_pb2.PodAssignment) -> str:
    return pod_ref(p.namespace, p.name)


def _pod(name: str, namespace: str = "default", node: str = NODE, image: str = "a") -> Pod:
    return Pod(
        meta=ObjectMeta(name=name, namespace=namespace),
        spec=PodSpec(containers=(Container(name="c", image=image),)),
        node_name=node,
    )


def _whole(servicer: NodeServicer, state: ClusterState) -> dict[str, node_pb2.PodAssignment]:
    """The set the master would send whole now, by pod."""
    msg = assignments_to_proto(
        0,
        state.pods_on_node(NODE),
        servicer._released,
        servicer._resolve_env,
        servicer._resolve_files,
        servicer._services_env,
    )
    return {_ref(p): p for p in msg.pods}


def test_pods_bound_one_by_one_are_sent_one_by_one() -> None:
    # Before, every bind sent the node's whole set again: 1 + 2 + ... + 10 = 55 pods.
    _, state, _, servicer = _setup()

    async def scenario() -> tuple[list[str], list[int], int, dict[str, node_pb2.PodAssignment]]:
        agent = _ChangesAgent(servicer, await _aregister(servicer, NODE))
        await agent.settle()
        for i in range(10):
            state.put(_pod(f"p{i}"))
            await agent.settle()
        state.remove("Pod", "p3", "default")
        await agent.settle()
        await agent.close()
        kinds = [str(m.WhichOneof("body")) for m in agent.received]
        sent = [
            len(m.assignment_changes.pods) + len(m.assignment_changes.removed)
            for m in agent.received
            if m.HasField("assignment_changes")
        ]
        return kinds, sent, agent.held.sequence or 0, agent.held.pods

    kinds, sent, sequence, held = asyncio.run(asyncio.wait_for(scenario(), 10))

    assert kinds.count("assignments") == 1  # the whole (empty) set at the start
    assert sent == [1] * 11
    assert sequence == 12
    assert sorted(held) == [f"p{i}" for i in range(10) if i != 3]


def test_an_agent_that_does_not_take_changes_gets_the_whole_set_every_time() -> None:
    _, state, _, servicer = _setup()

    async def scenario() -> list[int]:
        agent = _ChangesAgent(servicer, await _aregister(servicer, NODE), takes_changes=False)
        await agent.settle()
        for i in range(3):
            state.put(_pod(f"p{i}"))
            await agent.settle()
        await agent.close()
        assert not any(m.HasField("assignment_changes") for m in agent.received)
        return [len(m.assignments.pods) for m in agent.received if m.HasField("assignments")]

    assert asyncio.run(asyncio.wait_for(scenario(), 10)) == [0, 1, 2, 3]


def test_a_change_lost_on_the_way_is_found_by_the_next_ack_and_the_whole_set_mends_it() -> None:
    # No other change follows the lost one: only the ack's number shows it.
    _, state, _, servicer = _setup()

    async def scenario() -> tuple[bool, dict[str, node_pb2.PodAssignment]]:
        agent = _ChangesAgent(servicer, await _aregister(servicer, NODE))
        state.put(_pod("kept"))
        state.put(_pod("gone"))
        await agent.settle()
        agent.lose = 1
        state.remove("Pod", "gone", "default")
        await agent.settle()
        await agent.close()
        resynced = any(m.HasField("assignments") for m in agent.received[1:])
        return resynced, agent.held.pods

    resynced, held = asyncio.run(asyncio.wait_for(scenario(), 10))

    assert resynced
    assert sorted(held) == ["kept"]


def test_changes_out_of_turn_apply_nothing_and_ask_for_the_whole_set_once() -> None:
    held: AssignmentSet[str] = AssignmentSet()
    assert isinstance(held.changes(1, {"a": "a1"}, []), AskWhole)  # before any whole set
    held.whole(1, {"a": "a1"})
    assert held.changes(2, {"b": "b1"}, ["a"]) is True
    ask = held.changes(4, {"c": "c1"}, ["b"])
    assert isinstance(ask, AskWhole) and ask.sequence == 2
    assert held.changes(5, {"d": "d1"}, []) is False  # asked already: ignored
    assert held.acked(5) is None  # the set asked for is on its way
    assert held.pods == {"b": "b1"}
    again = held.acked(6)  # the master sent past the request, no set came: lost, again
    assert isinstance(again, AskWhole) and again.sequence == 2
    held.whole(7, {"e": "e1"})
    assert held.changes(8, {}, ["e"]) is True and held.pods == {}
    assert held.acked(8) is None and held.acked(0) is None
    assert isinstance(held.acked(9), AskWhole)  # change 9 lost, nothing after it


def test_the_feed_numbers_whole_sets_and_changes_in_one_run() -> None:
    feed = AssignmentFeed(takes_changes=True)
    feed.pod_changed("default/a")  # before the first whole set: it holds them all
    assert feed.take() == SendWhole(1) and feed.take() is None
    feed.pod_changed("default/b")
    feed.pod_changed("default/a")
    assert feed.take() == SendChanges(2, ("default/a", "default/b"))
    feed.numbered(2)
    assert feed.sequence == 3
    feed.pod_changed("default/c")
    feed.all_changed()
    assert feed.take() == SendWhole(4) and not feed.changed
    older = AssignmentFeed(takes_changes=False)
    older.pod_changed("default/a")
    assert older.take() == SendWhole(1) and older.take() == SendWhole(2)


OPS = (
    "bind",
    "bind",
    "bind",
    "respec",
    "status",
    "stop",
    "release",
    "delete",
    "move",
    "service",
    "flush",
    "reload",
    "reconnect",
    "lose",
)


async def _random_run(seed: int, steps: int) -> None:
    rng = random.Random(seed)
    _, state, _, servicer = _setup()
    await _aregister(servicer, "n2")
    released: set[str] = set()
    servicer.gate_stops(lambda pod: f"{pod.meta.namespace}/{pod.meta.name}" in released)
    agent = _ChangesAgent(servicer, await _aregister(servicer, NODE))
    names = 0
    lose = 0

    def mine() -> list[Pod]:
        return sorted(state.pods_on_node(NODE), key=lambda p: p.meta.name)

    for step in range(steps):
        op = rng.choice(OPS)
        # The assignment messages this step causes lose their first `lose`.
        agent.lose, lose = lose, 0
        pods = mine()
        pod = rng.choice(pods) if pods else None
        if op == "bind":
            names += 1
            state.put(_pod(f"p{names}", rng.choice(("default", "team"))))
        elif op == "respec" and pod is not None:
            spec = replace(pod.spec, containers=(Container(name="c", image=f"i{step}"),))
            state.put(replace(pod, spec=spec, epoch=pod.epoch + 1))
        elif op == "status" and pod is not None:
            state.put(replace(pod, status=replace(pod.status, ready=not pod.status.ready)))
        elif op == "stop" and pod is not None:
            state.put(replace(pod, deletion_requested_at=100.0 + step))
        elif op == "release":
            stopping = [
                f"{p.meta.namespace}/{p.meta.name}" for p in pods if p.deletion_requested_at
            ]
            if stopping:
                released.add(rng.choice(stopping))
                servicer.refresh({NODE})
        elif op == "delete" and pod is not None:
            state.remove("Pod", pod.meta.name, pod.meta.namespace)
        elif op == "move" and pod is not None:
            state.put(replace(pod, node_name="n2"))
        elif op == "service":
            port = ServicePort(port=80 + step, target_port="80")
            svc = Service(meta=ObjectMeta(name=f"s{step % 3}"), selector={}, ports=(port,))
            state.put(svc)
        elif op == "flush":
            await state.flush()
        elif op == "reload":
            await state.reload()
        elif op == "reconnect":
            await agent.close()
            agent = _ChangesAgent(servicer, await _aregister(servicer, NODE))
        elif op == "lose":
            lose = rng.randint(1, 2)
        await agent.settle()
        agent.lose = 0
        assert agent.held.pods == _whole(servicer, state), (seed, step, op)
    await agent.close()


def test_the_set_built_of_changes_always_equals_the_whole_set() -> None:
    for seed in range(40):
        asyncio.run(asyncio.wait_for(_random_run(seed, 60), 30))
