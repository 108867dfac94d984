"""A flush's waiters hear what befell the batch or queue their changes were in.

`ClusterState.flush` is a group commit: a caller waits while another's batch, which may
carry its change, is written. Before, a waiter whose change rode in a batch etcd did not
answer was then told the next refusal's "nothing was changed" (a lie if the batch landed),
and a waiter whose queued change a reload dropped found the emptied queue "written" and
acknowledged a change that was neither in memory nor in the store (master/write_fates.py).
"""

from __future__ import annotations

import asyncio
import time

import pytest

from kernel.clock import FakeClock
from master.model import ObjectMeta, Pod, PodSpec
from master.state import ClusterState
from master.store.memory import MemoryStore
from master.store.port import ChangeDropped, OutcomeUnknown, StoreError, WritesInDoubt
from tests.unit.faulty_store import FaultyStore


def _pod(name: str) -> Pod:
    return Pod(meta=ObjectMeta(name=name, uid=f"uid-{name}"), spec=PodSpec(containers=()))


def _stored(inner: MemoryStore) -> set[str]:
    return {o.meta.name for o in inner.load_all()}


async def _entered(store: FaultyStore, timeout: float = 30.0) -> None:
    """Until the store's write has begun; fails (instead of hanging) after `timeout` s."""
    deadline = time.monotonic() + timeout
    while not store.entered.is_set():
        assert time.monotonic() < deadline, "the store write never began"
        await asyncio.sleep(0.001)


def test_a_waiter_whose_change_rode_in_a_batch_of_unknown_outcome_hears_it_may_be_saved() -> None:
    async def scenario() -> None:
        inner = MemoryStore()
        store = FaultyStore(inner)
        state = ClusterState(store, FakeClock())
        state.put(_pod("a"))
        store.hold()
        first = asyncio.create_task(state.flush())
        await _entered(store)
        state.put(_pod("b"))  # queued after the batch in flight began
        # "a" is in the batch in flight: this waiter's change rides in it.
        waiter = asyncio.create_task(state.flush())
        await asyncio.sleep(0.01)
        store.failing = True
        store.error = OutcomeUnknown("etcd did not answer: may or may not have been applied")
        store.release()
        with pytest.raises(OutcomeUnknown):
            await first
        # Every later write is refused while the store is in doubt ("nothing was sent").
        store.error = WritesInDoubt("an earlier write is in doubt: nothing was sent")

        with pytest.raises(OutcomeUnknown, match="may or may not have been saved"):
            await waiter

    asyncio.run(scenario())


def test_a_waiter_whose_queued_change_a_reload_dropped_is_not_acknowledged() -> None:
    async def scenario() -> None:
        inner = MemoryStore()
        store = FaultyStore(inner)
        state = ClusterState(store, FakeClock())
        state.put(_pod("a"))
        store.hold()
        first = asyncio.create_task(state.flush())
        await _entered(store)
        state.put(_pod("b"))
        waiter = asyncio.create_task(state.flush())
        # Memory made equal to the store once the batch in flight ends (a reload after a
        # write in doubt, as master/settler.py does): the queue, "b" in it, is dropped.
        reload = asyncio.create_task(state.reload())
        await asyncio.sleep(0.01)
        store.failing = True
        store.release()
        with pytest.raises(StoreError):
            await first
        store.failing = False
        await reload

        with pytest.raises(ChangeDropped, match="nothing was saved"):
            await waiter
        assert _stored(inner) == set()
        assert state.pod("b") is None

    asyncio.run(scenario())


def test_a_reload_while_a_batch_is_written_drops_only_what_was_queued_after_it() -> None:
    async def scenario() -> None:
        inner = MemoryStore()
        store = FaultyStore(inner)
        state = ClusterState(store, FakeClock())
        state.put(_pod("a"))
        store.hold()
        first = asyncio.create_task(state.flush())
        await _entered(store)
        state.put(_pod("b"))
        waiter = asyncio.create_task(state.flush())
        await asyncio.sleep(0.01)
        # A takeover's replace_all does not wait for the batch in flight ("a").
        state.replace_all(inner.load_all(), state.resource_version)
        store.release()

        await first  # "a" was being written, not dropped: its writer hears it is saved
        with pytest.raises(ChangeDropped):
            await waiter
        assert _stored(inner) == {"a"}

    asyncio.run(scenario())


def test_a_waiter_whose_change_was_written_is_acknowledged_despite_a_later_reload() -> None:
    async def scenario() -> None:
        inner = MemoryStore()
        store = FaultyStore(inner)
        state = ClusterState(store, FakeClock())
        state.put(_pod("a"))
        await state.flush()
        state.replace_all(inner.load_all(), state.resource_version)  # nothing queued
        state.put(_pod("b"))

        await state.flush()

        assert _stored(inner) == {"a", "b"}

    asyncio.run(scenario())
