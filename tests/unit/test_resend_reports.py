"""After memory is reloaded from the store, every agent is asked for all its reports again.

A reload (a settled write in doubt, a leader resuming) drops what memory held and the
store did not: pod statuses the agents reported meanwhile too. An agent says a report
again only when it changes, so the master asks each session for all of them, once it
takes writes again. The NodeServicer is driven directly (fake clock, MemoryStore, no
sockets), as in test_node_session_messages.
"""

from __future__ import annotations

import asyncio
from typing import Any

from master.api.node_servicer import RESEND_RECHECK, STOP_GATE_RECHECK, recheck_after, resend_now
from master.model import ObjectMeta, Pod, PodPhase, PodSpec
from protos import node_pb2
from tests.unit.test_node_session_messages import _Agent, _aregister, _setup


def _running(pod: str, epoch: int) -> node_pb2.AgentMessage:
    report = node_pb2.PodStatusReport(pod_name=pod, epoch=epoch, phase="Running", ready=True)
    return node_pb2.AgentMessage(statuses=node_pb2.PodStatusBatch(pods=[report]))


def _phase(pod: object) -> PodPhase:
    assert isinstance(pod, Pod)
    return pod.status.phase


def test_a_reload_asks_every_session_for_its_reports_and_the_answer_restores_the_status() -> None:
    _, state, _, servicer = _setup()

    async def scenario() -> tuple[PodPhase, PodPhase, Any, Any, PodPhase]:
        one = _Agent(servicer, "n1", await _aregister(servicer, "n1"))
        two = _Agent(servicer, "n2", await _aregister(servicer, "n2"))
        pod = state.put(Pod(meta=ObjectMeta(name="p"), spec=PodSpec(containers=()), node_name="n1"))
        await state.flush()
        await one.next("assignments")
        await two.next("assignments")
        one.up.put_nowait(_running("p", pod.epoch))
        while _phase(state.get("Pod", "p")) != PodPhase.RUNNING:
            await asyncio.sleep(0.01)
        reported = _phase(state.get("Pod", "p"))
        # Nothing flushed it (no flusher runs here): the reload drops the report.
        await state.reload()
        after_reload = _phase(state.get("Pod", "p"))
        asked_one = await one.next("resend_reports")
        asked_two = await two.next("resend_reports")
        one.up.put_nowait(_running("p", pod.epoch))  # the agent's answer
        while _phase(state.get("Pod", "p")) != PodPhase.RUNNING:
            await asyncio.sleep(0.01)
        restored = _phase(state.get("Pod", "p"))
        await one.close()
        await two.close()
        return reported, after_reload, asked_one, asked_two, restored

    reported, after_reload, asked_one, asked_two, restored = asyncio.run(
        asyncio.wait_for(scenario(), 10)
    )

    assert reported == PodPhase.RUNNING and after_reload == PodPhase.PENDING
    assert "reloaded" in asked_one.reason and "reloaded" in asked_two.reason
    assert restored == PodPhase.RUNNING


class _Reader:
    """Collects what a session sends down, without cancelling the stream to wait a while."""

    def __init__(self, agent: _Agent) -> None:
        self.bodies: list[str] = []
        self._beats = 0
        self._task = asyncio.create_task(self._read(agent))

    async def _read(self, agent: _Agent) -> None:
        async for msg in agent.down:
            self.bodies.append(msg.WhichOneof("body"))

    async def wait_for(self, body: str, count: int = 1) -> None:
        while self.bodies.count(body) < count:
            await asyncio.sleep(0.01)

    async def passes(self, agent: _Agent) -> bool:
        """Two heartbeats, each sent once the ack of the one before is back; False when the
        session ended instead. The session's loop yields a pass's ack before it looks at the
        resend request, and the second ack only in a later pass: once it is here, a pass
        begun after everything the test did before has run whole, and anything it sent is
        in `bodies` before it (a marker, where a sleep only hoped the loop had its turn)."""
        for _ in range(2):
            acks = self.bodies.count("heartbeat_ack")
            self._beats += 1
            beat = node_pb2.Heartbeat(sequence=self._beats)
            agent.up.put_nowait(node_pb2.AgentMessage(heartbeat=beat))
            while self.bodies.count("heartbeat_ack") == acks:
                if self._task.done():
                    return False
                await asyncio.sleep(0.01)
        return True

    async def stop(self, agent: _Agent) -> None:
        agent.up.put_nowait(None)
        await self._task


def test_the_request_waits_until_the_master_takes_writes_again() -> None:
    # A reload happens with writes shut; reports then would be refused and end the session.
    _, state, _, servicer = _setup()
    gate: dict[str, str | None] = {"why": None}
    # Shut while this master settles (a follower's gate is shut for good: it ends sessions).
    state.set_write_gate(lambda: gate["why"], settling=lambda: gate["why"] is not None)

    async def scenario() -> tuple[int, int, int]:
        agent = _Agent(servicer, "n1", await _aregister(servicer, "n1"))
        reader = _Reader(agent)
        await reader.wait_for("assignments")
        gate["why"] = "a write's outcome is unknown"
        await state.reload()
        assert await reader.passes(agent)
        while_shut = reader.bodies.count("resend_reports")
        gate["why"] = None
        await reader.wait_for("resend_reports")
        assert await reader.passes(agent)
        once = reader.bodies.count("resend_reports")
        await state.reload()  # writes open: at once
        await reader.wait_for("resend_reports", 2)
        again = reader.bodies.count("resend_reports")
        await reader.stop(agent)
        return while_shut, once, again

    while_shut, once, again = asyncio.run(asyncio.wait_for(scenario(), 10))

    assert (while_shut, once, again) == (0, 1, 2)


def test_a_session_looks_again_only_for_a_gate_that_may_open_by_itself() -> None:
    assert resend_now(due=True, writable=True)
    assert not resend_now(due=True, writable=False)
    assert not resend_now(due=False, writable=True)
    assert recheck_after(withheld=False, gate_shut=False) is None
    assert recheck_after(withheld=True, gate_shut=False) == STOP_GATE_RECHECK
    assert recheck_after(withheld=True, gate_shut=True) == RESEND_RECHECK
    assert recheck_after(withheld=False, gate_shut=True) == RESEND_RECHECK


def test_every_replace_all_tells_after_the_listeners_and_until_unsubscribed() -> None:
    # replace_all is how a leader taking over or resuming reloads (master/ha/follower.py
    # resync), and what ClusterState.reload ends with (a settled write in doubt).
    _, state, _, _ = _setup()
    told: list[str] = []
    state.subscribe(lambda kind, obj, deleted, previous: told.append(f"{kind}/{obj.meta.name}"))
    stop = state.on_replaced(lambda: told.append("replaced"))
    stored = Pod(meta=ObjectMeta(name="p", resource_version=7), spec=PodSpec(containers=()))

    state.replace_all([stored], 7)
    stop()
    state.replace_all([], 8)

    assert told == ["Pod/p", "replaced", "Pod/p"]


def _fenced(pod: str, epoch: int) -> node_pb2.AgentMessage:
    report = node_pb2.PodStatusReport(
        pod_name=pod, epoch=epoch, phase="Pending", reason="Fenced", message="lease lost",
        removed=True,
    )  # fmt: skip
    return node_pb2.AgentMessage(statuses=node_pb2.PodStatusBatch(pods=[report]))


def _notice(again: bool, reason: str = "AgentLoopStalled") -> node_pb2.AgentMessage:
    notice = node_pb2.NodeNotice(reason=reason, message="stalled 2.0s", again=again)
    return node_pb2.AgentMessage(notice=notice)


# A notice sent after the message under test: once its event is in, the master has handled
# that message (a session's messages are handled in order).
MARKER = "Marker"


def _events(state: Any, reason: str) -> list[tuple[str, int]]:
    """(involved name, count) of the events in memory with `reason`."""
    return sorted((e.involved_name, e.count) for e in state.objects("Event") if e.reason == reason)


async def _until(check: Any) -> None:
    while not check():
        await asyncio.sleep(0.01)


def test_a_fenced_event_a_reload_dropped_is_said_again_and_one_it_kept_is_not_doubled() -> None:
    # The agent reports a pod it stopped by fencing as Fenced until the master assigns it
    # again (or for a minute), so its resent reports carry it; the master had remembered
    # the event as said, and said it never again, though the reload had dropped it.
    _, state, _, servicer = _setup()

    async def scenario() -> tuple[list[tuple[str, int]], ...]:
        agent = _Agent(servicer, "n1", await _aregister(servicer, "n1"))
        pod = state.put(Pod(meta=ObjectMeta(name="p"), spec=PodSpec(containers=()), node_name="n1"))
        await state.flush()
        await agent.next("assignments")
        agent.up.put_nowait(_fenced("p", pod.epoch))
        await _until(lambda: _events(state, "Fenced"))
        said = _events(state, "Fenced")
        await state.reload()  # not flushed: the event and the pod's Fenced status are gone
        dropped = _events(state, "Fenced")
        await agent.next("resend_reports")
        agent.up.put_nowait(_fenced("p", pod.epoch))  # the agent's answer
        await _until(lambda: _events(state, "Fenced"))
        again = _events(state, "Fenced")
        await state.flush()
        await state.reload()  # stored this time: kept
        await agent.next("resend_reports")
        agent.up.put_nowait(_fenced("p", pod.epoch))
        agent.up.put_nowait(_notice(again=False, reason=MARKER))
        await _until(lambda: _events(state, MARKER))
        kept = _events(state, "Fenced")
        await agent.close()
        return said, dropped, again, kept

    said, dropped, again, kept = asyncio.run(asyncio.wait_for(scenario(), 10))

    assert said == [("p", 1)]
    assert dropped == []
    assert again == [("p", 1)]
    assert kept == [("p", 1)]


def test_a_notice_sent_again_is_recorded_when_a_reload_dropped_it_and_only_then() -> None:
    _, state, _, servicer = _setup()

    async def scenario() -> tuple[list[tuple[str, int]], ...]:
        agent = _Agent(servicer, "n1", await _aregister(servicer, "n1"))
        await agent.next("assignments")
        agent.up.put_nowait(_notice(again=False))
        await _until(lambda: _events(state, "AgentLoopStalled"))
        said = _events(state, "AgentLoopStalled")
        await state.reload()  # not flushed: the event is gone
        dropped = _events(state, "AgentLoopStalled")
        await agent.next("resend_reports")
        agent.up.put_nowait(_notice(again=True))
        await _until(lambda: _events(state, "AgentLoopStalled"))
        again = _events(state, "AgentLoopStalled")
        await state.flush()
        agent.up.put_nowait(_notice(again=True))  # stored: sent again, not counted again
        agent.up.put_nowait(_notice(again=False, reason=MARKER))
        await _until(lambda: _events(state, MARKER))
        kept = _events(state, "AgentLoopStalled")
        agent.up.put_nowait(_notice(again=False))  # a new one of the same words: counted
        agent.up.put_nowait(_notice(again=False, reason=MARKER))
        await _until(lambda: _events(state, MARKER) == [("n1", 2)])
        after = _events(state, "AgentLoopStalled")
        await agent.close()
        return said, dropped, again, kept, after

    said, dropped, again, kept, after = asyncio.run(asyncio.wait_for(scenario(), 10))

    assert said == [("n1", 1)]
    assert dropped == []
    assert again == [("n1", 1)]
    assert kept == [("n1", 1)]
    assert after == [("n1", 2)]


def test_a_master_that_follows_ends_its_sessions_and_one_settling_keeps_them() -> None:
    # A leader deposed while alive kept its agents' sessions and acked their heartbeats:
    # the new leader never heard them and showed their nodes NotReady.
    _, state, _, servicer = _setup()
    gate: dict[str, Any] = {"why": None, "settling": False}
    state.set_write_gate(lambda: gate["why"], settling=lambda: gate["settling"])

    async def scenario() -> tuple[bool, bool, BaseException | None]:
        agent = _Agent(servicer, "n1", await _aregister(servicer, "n1"))
        reader = _Reader(agent)
        await reader.wait_for("assignments")
        # A pause reloads memory (master/ha/role.py: the follower's resync), as does a
        # deposition: each tells the sessions (on_replaced).
        gate["why"], gate["settling"] = "the leader cannot confirm its lease", True
        await state.reload()
        kept_while_settling = await reader.passes(agent)
        gate["settling"] = False  # deposed: another master leads
        await state.reload()
        await asyncio.wait_for(asyncio.shield(reader._task), 2.0)
        ended = reader._task.done()
        return kept_while_settling, ended, reader._task.exception()

    kept_while_settling, ended, error = asyncio.run(asyncio.wait_for(scenario(), 10))

    assert kept_while_settling
    assert ended and error is None  # ended cleanly; the follower marked nothing
