"""The cluster's defaults at master start, when several masters start on one store at once."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence

import pytest

from kernel.clock import FakeClock
from master.model import Namespace, ObjectMeta, ServiceAccount, StoredObject
from master.server import DEFAULTS_ATTEMPTS, ensure_defaults
from master.state import ClusterState
from master.store.memory import MemoryStore
from master.store.port import ObjectKey, WriteConflict


class RacingStore(MemoryStore):
    """A store another master writes to first: each of our next `losses` batches is refused,
    as etcd refuses it, after the other master stored its defaults (`theirs`) or something
    else the batch compared (etcd changing under it)."""

    def __init__(self, losses: int, theirs: bool = True) -> None:
        super().__init__()
        self.losses = losses
        self.theirs = theirs
        self.ours = 0  # our batches stored

    def write(
        self,
        puts: Sequence[StoredObject],
        deletes: Sequence[ObjectKey],
        meta: Mapping[str, str] | None = None,
    ) -> None:
        if self.losses and puts:
            self.losses -= 1
            if self.theirs:
                theirs = ObjectMeta(name="default", uid=f"theirs-{self.losses}", resource_version=7)
                super().write([Namespace(theirs), ServiceAccount(theirs)], [])
            raise WriteConflict("writing a batch refused: changed by another writer")
        super().write(puts, deletes, meta)
        self.ours += bool(puts)


def start(store: MemoryStore) -> ClusterState:
    async def scenario() -> ClusterState:
        state = ClusterState(store, FakeClock())
        await state.load()
        await ensure_defaults(state)
        return state

    return asyncio.run(scenario())


def test_a_master_that_loses_the_race_for_the_defaults_takes_the_winners() -> None:
    store = RacingStore(losses=1)
    state = start(store)
    namespace = state.get("Namespace", "default")
    assert namespace is not None and namespace.meta.uid == "theirs-0"
    account = state.get("ServiceAccount", "default")
    assert account is not None and account.meta.uid == "theirs-0"
    assert store.losses == 0 and store.ours == 0  # theirs only: nothing left to write


def test_a_master_that_keeps_losing_stops_with_the_conflict() -> None:
    with pytest.raises(WriteConflict):
        start(RacingStore(losses=DEFAULTS_ATTEMPTS, theirs=False))
    # One fewer conflict, and the last attempt stores the defaults.
    store = RacingStore(losses=DEFAULTS_ATTEMPTS - 1, theirs=False)
    state = start(store)
    namespace = state.get("Namespace", "default")
    assert namespace is not None and not namespace.meta.uid.startswith("theirs")
    assert store.ours == 1


def test_alone_a_master_writes_the_defaults_once() -> None:
    store = RacingStore(losses=0)
    state = start(store)
    assert state.get("Namespace", "default") is not None
    assert state.get("ServiceAccount", "default") is not None
    assert store.ours == 1
