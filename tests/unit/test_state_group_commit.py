"""ClusterState.flush is a group commit: a waiter whose changes are already in the store
returns without writing the changes others queued since (a thousand agents registering
at once each waited for everybody's newer writes before)."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Mapping, Sequence

from kernel.clock import FakeClock
from master.model import ConfigMap, ObjectMeta, StoredObject
from master.state import ClusterState
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
