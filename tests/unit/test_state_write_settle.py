"""A write that reaches the leader while it takes over or confirms its lease (paused: an etcd
member electing a new Raft leader) waits for it, up to WRITE_SETTLE_S, instead of failing;
a master that is simply not the leader refuses at once (a fake clock throughout)."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence

import pytest

from kernel.clock import FakeClock
from master.model import ConfigMap, Event, ObjectMeta, StoredObject
from master.state import WRITE_SETTLE_S, ClusterState
from master.store.memory import MemoryStore
from master.store.port import NotLeaderError, ObjectKey


class Gate:
    def __init__(self, refusal: str | None, settling: bool) -> None:
        self.refusal = refusal
        self.settling = settling


def state_with(gate: Gate, clock: FakeClock) -> ClusterState:
    state = ClusterState(MemoryStore(), clock)
    state.set_write_gate(lambda: gate.refusal, settling=lambda: gate.settling)
    return state


def put_one(state: ClusterState) -> None:
    state.put(ConfigMap(ObjectMeta(name="c")))


async def wait_for_sleepers(clock: FakeClock, write: asyncio.Task[None]) -> None:
    """Until the write sleeps on the clock (waiting) or has finished."""
    while clock.sleepers == 0 and not write.done():
        await asyncio.sleep(0)


def test_a_write_waits_for_a_paused_leader_that_resumes() -> None:
    async def scenario() -> None:
        clock = FakeClock()
        gate = Gate("the leader cannot confirm its etcd lease right now", settling=True)
        state = state_with(gate, clock)
        write = asyncio.create_task(state.commit(lambda: put_one(state)))
        await wait_for_sleepers(clock, write)
        clock.advance(0.5)
        await wait_for_sleepers(clock, write)
        assert not write.done()

        gate.refusal, gate.settling = None, False  # resumed
        clock.advance(0.02)
        await write

        assert state.get("ConfigMap", "c") is not None

    asyncio.run(scenario())


def test_a_write_gives_up_once_the_leader_stays_paused_too_long() -> None:
    async def scenario() -> None:
        clock = FakeClock()
        state = state_with(Gate("cannot confirm its etcd lease", settling=True), clock)
        write = asyncio.create_task(state.commit(lambda: put_one(state)))
        while not write.done():
            await wait_for_sleepers(clock, write)
            clock.advance(0.1)

        with pytest.raises(NotLeaderError, match="cannot confirm its etcd lease"):
            await write
        assert clock.monotonic() - 1000.0 == pytest.approx(WRITE_SETTLE_S, abs=0.11)
        assert state.get("ConfigMap", "c") is None

    asyncio.run(scenario())


def test_a_follower_refuses_at_once() -> None:
    async def scenario() -> None:
        clock = FakeClock()
        state = state_with(Gate("master m1 is a follower; the leader is m0", False), clock)

        with pytest.raises(NotLeaderError, match="is a follower"):
            await state.commit(lambda: put_one(state))
        assert clock.monotonic() == 1000.0

    asyncio.run(scenario())


class PausingStore(MemoryStore):
    """A slow write during which the leader pauses (etcd electing a Raft leader of its own)."""

    def __init__(self, clock: FakeClock, gate: Gate) -> None:
        super().__init__()
        self.clock = clock
        self.gate = gate

    def write(
        self,
        puts: Sequence[StoredObject],
        deletes: Sequence[ObjectKey],
        meta: Mapping[str, str] | None = None,
    ) -> None:
        super().write(puts, deletes, meta)
        self.clock.advance(1.5)  # slow enough for a StoreSlow event
        self.gate.refusal, self.gate.settling = "cannot confirm its etcd lease", True


def test_a_durable_write_is_acknowledged_though_the_leader_paused_during_it() -> None:
    async def scenario() -> None:
        clock = FakeClock()
        gate = Gate(None, settling=False)
        store = PausingStore(clock, gate)
        state = ClusterState(store, clock)
        state.set_write_gate(lambda: gate.refusal, settling=lambda: gate.settling)

        await state.commit(lambda: put_one(state))  # no NotLeaderError: it is durable

        assert [o.meta.name for o in store.load_all() if o.kind == "ConfigMap"] == ["c"]
        assert state.get("ConfigMap", "c") is not None
        assert not [e for e in state.objects("Event") if isinstance(e, Event)]

    asyncio.run(scenario())


def test_a_master_that_knows_no_leader_waits_until_it_learns_one() -> None:
    async def scenario() -> None:
        clock = FakeClock()
        gate = Gate("no master is the leader right now", settling=False)
        leader = {"address": ""}
        state = ClusterState(MemoryStore(), clock)
        state.set_write_gate(
            lambda: gate.refusal, lambda: leader["address"], settling=lambda: gate.settling
        )
        waiting = asyncio.create_task(state.wait_for_a_writer())
        await wait_for_sleepers(clock, waiting)
        clock.advance(1.0)
        await wait_for_sleepers(clock, waiting)
        assert not waiting.done()

        leader["address"] = "10.0.0.2:7400"  # its first read of the leader key answered
        clock.advance(0.02)
        await waiting

        assert clock.monotonic() - 1000.0 == pytest.approx(1.02)

    asyncio.run(scenario())


def test_a_master_that_knows_no_leader_gives_up_after_the_settle_time() -> None:
    async def scenario() -> None:
        clock = FakeClock()
        state = state_with(Gate("no master is the leader right now", False), clock)
        waiting = asyncio.create_task(state.wait_for_a_writer())
        while not waiting.done():
            await wait_for_sleepers(clock, waiting)
            clock.advance(0.1)
        await waiting

        assert clock.monotonic() - 1000.0 == pytest.approx(WRITE_SETTLE_S, abs=0.11)
        with pytest.raises(NotLeaderError, match="no master is the leader"):
            await state.commit(lambda: put_one(state))

    asyncio.run(scenario())


def test_a_follower_that_knows_the_leader_and_a_leader_do_not_wait() -> None:
    async def scenario() -> None:
        clock = FakeClock()
        follower = ClusterState(MemoryStore(), clock)
        follower.set_write_gate(lambda: "a follower", lambda: "10.0.0.2:7400")
        await follower.wait_for_a_writer()
        await state_with(Gate(None, False), clock).wait_for_a_writer()

        assert clock.monotonic() == 1000.0

    asyncio.run(scenario())
