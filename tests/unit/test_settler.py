"""A single master on etcd after a write in doubt: the settler pauses it, settles, reloads
memory from the store (listeners told) and resumes (master/settler.py; a fake clock, a
memory store standing in for etcd)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping, Sequence

import pytest

from kernel.clock import FakeClock
from master.model import ConfigMap, ObjectMeta, StoredObject
from master.settler import POLL_S, Settler
from master.state import ClusterState
from master.store.memory import MemoryStore
from master.store.port import NotLeaderError, ObjectKey, StoreError

UNANSWERED = "etcd at http://127.0.0.1:2379 did not answer within 5s"


class DoubtfulStore(MemoryStore):
    """A store whose last write's outcome may be unknown, and that settles when `back`."""

    def __init__(self) -> None:
        super().__init__()
        self.in_doubt = False
        self.back = False
        self.writes = 0

    def settle(self) -> None:
        if not self.back:
            raise StoreError(UNANSWERED)
        self.in_doubt = False

    def write(
        self,
        puts: Sequence[StoredObject],
        deletes: Sequence[ObjectKey],
        meta: Mapping[str, str] | None = None,
    ) -> None:
        self.writes += 1
        super().write(puts, deletes, meta)


class Controllers:
    def __init__(self) -> None:
        self.running = False
        self.graces = 0

    def start_grace(self) -> None:
        self.graces += 1

    async def run(self) -> None:
        self.running = True
        try:
            await asyncio.Event().wait()
        finally:
            self.running = False


async def tick(clock: FakeClock, seconds: float = POLL_S) -> None:
    """Move the clock and wait until the settler sleeps on it again (its steps run etcd's
    calls on threads)."""
    clock.advance(seconds)
    deadline = time.monotonic() + 5
    while clock.sleepers == 0:
        assert time.monotonic() < deadline, "the settler did not come back to its sleep"
        await asyncio.sleep(0.001)


def test_a_write_in_doubt_pauses_writes_then_memory_becomes_the_stores_and_writes_resume() -> None:
    async def scenario() -> None:
        clock = FakeClock()
        store = DoubtfulStore()
        state = ClusterState(store, clock)
        await state.load()
        seen: list[tuple[str, bool]] = []

        def listener(kind: str, obj: StoredObject, deleted: bool, old: object) -> None:
            seen.append((obj.meta.name, deleted))

        state.subscribe(listener)
        controllers = Controllers()
        settler = Settler(store, state, controllers, clock)
        task = asyncio.create_task(settler.run())
        await tick(clock, 0)
        assert controllers.running and state.writable

        # A commit's batch landed though etcd never said so; memory lacks it, and holds a
        # controller's change queued since.
        MemoryStore.write(store, [ConfigMap(ObjectMeta(name="landed"))], [])
        store.in_doubt = True
        state.put(ConfigMap(ObjectMeta(name="queued")))
        await tick(clock)

        assert not state.writable and not controllers.running
        writes = store.writes
        with pytest.raises(NotLeaderError, match="etcd did not confirm a write"):
            await state.flush()  # the queue is held: nothing goes to the store
        assert store.writes == writes
        await tick(clock)  # the settle fails: etcd is still away
        assert UNANSWERED in state.write_refusal()

        store.back = True
        for _ in range(10):
            await tick(clock, 0.5)

        assert state.writable and controllers.running and controllers.graces == 1
        assert state.get("ConfigMap", "landed") is not None
        assert state.get("ConfigMap", "queued") is None
        assert ("landed", False) in seen and ("queued", True) in seen
        assert store.writes == writes
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert not controllers.running

    asyncio.run(scenario())


def test_a_master_whose_writes_are_confirmed_is_never_paused() -> None:
    async def scenario() -> None:
        clock = FakeClock()
        store = DoubtfulStore()
        state = ClusterState(store, clock)
        controllers = Controllers()
        settler = Settler(store, state, controllers, clock)
        task = asyncio.create_task(settler.run())
        for _ in range(5):
            await tick(clock)

        assert state.writable and controllers.running and controllers.graces == 0
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(scenario())
