"""ClusterState.flush is a group commit: a waiter whose changes are already in the store
returns without writing the changes others queued since (a thousand agents registering
at once each waited for everybody's newer writes before)."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Mapping, Sequence

import pytest

from kernel.clock import FakeClock
from master.model import ConfigMap, Event, ObjectMeta, StoredObject
from master.state import ClusterState, store_was_slow
from master.store.memory import MemoryStore
from master.store.port import ObjectKey


class GatedStore(MemoryStore):
    """A store whose writes wait until the test opens the gate."""

    def __init__(self) -> None:
        super().__init__()
        self.gate = threading.Event()
        self.entered = threading.Event()

    def write(
        self,
        puts: Sequence[StoredObject],
        deletes: Sequence[ObjectKey],
        meta: Mapping[str, str] | None = None,
    ) -> None:
        self.entered.set()
        self.gate.wait(5)
        super().write(puts, deletes, meta)


def _config(name: str) -> ConfigMap:
    return ConfigMap(meta=ObjectMeta(name=name), data={"k": "v"})


async def _wait_thread_event(event: threading.Event) -> None:
    for _ in range(500):
        if event.is_set():
            return
        await asyncio.sleep(0.01)
    raise AssertionError("the store write never started")


async def _scenario() -> tuple[int, set[str]]:
    store = GatedStore()
    state = ClusterState(store, FakeClock())
    state.put(_config("a"))
    first = asyncio.create_task(state.flush())
    second = asyncio.create_task(state.flush())  # also only needs "a"
    await _wait_thread_event(store.entered)
    state.put(_config("b"))  # queued while "a" is being written
    store.gate.set()
    await asyncio.gather(first, second)
    return store.writes, {o.meta.name for o in store.load_all()}


def test_a_waiter_whose_change_is_written_does_not_write_later_changes() -> None:
    writes, stored = asyncio.run(_scenario())

    assert writes == 1
    assert stored == {"a"}


async def _later_change() -> set[str]:
    store = GatedStore()
    store.gate.set()
    state = ClusterState(store, FakeClock())
    state.put(_config("a"))
    await state.flush()
    state.put(_config("b"))
    await state.flush()
    await state.flush()  # nothing new: no empty transaction either
    assert store.writes == 2
    return {o.meta.name for o in store.load_all()}


def test_a_change_made_before_the_call_is_always_written() -> None:
    assert asyncio.run(_later_change()) == {"a", "b"}


# -- a slow store is reported ---------------------------------------------------------------


class SlowStore(MemoryStore):
    """Every write takes `seconds` on the fake clock."""

    def __init__(self, clock: FakeClock, seconds: float) -> None:
        super().__init__()
        self.clock = clock
        self.seconds = seconds

    def write(
        self,
        puts: Sequence[StoredObject],
        deletes: Sequence[ObjectKey],
        meta: Mapping[str, str] | None = None,
    ) -> None:
        self.clock.advance(self.seconds)
        super().write(puts, deletes, meta)


def _slow_events(seconds: float, writes: int) -> list[str]:
    async def scenario() -> list[str]:
        clock = FakeClock()
        state = ClusterState(SlowStore(clock, seconds), clock)
        for i in range(writes):
            state.put(_config(f"c{i}"))
            await state.flush()
        return [
            e.message
            for e in state.objects("Event")
            if isinstance(e, Event) and e.reason == "StoreSlow"
        ]

    return asyncio.run(scenario())


def test_a_slow_store_write_is_one_warning_event_a_minute() -> None:
    (message,) = _slow_events(2.5, 3)  # three slow writes within a minute: one event

    assert "took 2.5s" in message and "node leases do not wait" in message


def test_a_fast_store_says_nothing() -> None:
    assert _slow_events(0.2, 3) == []


@pytest.mark.parametrize(
    ("seconds", "last", "now", "report"),
    [
        (0.5, None, 100.0, False),
        (1.0, None, 100.0, True),
        (3.0, 90.0, 100.0, False),  # reported 10 s ago
        (3.0, 40.0, 100.0, True),  # a minute ago
    ],
)
def test_store_was_slow(seconds: float, last: float | None, now: float, report: bool) -> None:
    assert store_was_slow(seconds, last, now) is report
