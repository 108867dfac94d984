"""SecurityRegistry over the store's meta table: tokens and bindings persist; deletion unbinds."""

from __future__ import annotations

import asyncio

import pytest

from kernel.clock import FakeClock
from master.model import Node, ObjectMeta, Resources
from master.pki.registry import SecurityRegistry
from master.state import ClusterState
from master.store.memory import MemoryStore
from master.store.port import StoreError, WriteConflict
from tests.unit.faulty_store import FaultyStore

CA_HASH = "B" * 43


def test_tokens_survive_a_restart_and_keep_only_their_hash() -> None:
    async def scenario() -> None:
        store, clock = MemoryStore(), FakeClock()
        registry = SecurityRegistry(store, clock)
        await registry.load()
        token, _ = await registry.create_token(CA_HASH, 3600, "first")
        await registry.count_use(token.id)

        again = SecurityRegistry(store, clock)
        await again.load()

        assert [r.id for r in again.tokens()] == [token.id]
        assert again.tokens()[0].uses == 1
        assert again.check(token.id, token.secret) == ""
        assert token.secret not in (store.meta_get("security.join_tokens") or "")

    asyncio.run(scenario())


def test_a_revoked_token_stays_revoked_after_a_restart() -> None:
    async def scenario() -> None:
        store, clock = MemoryStore(), FakeClock()
        registry = SecurityRegistry(store, clock)
        await registry.load()
        token, _ = await registry.create_token(CA_HASH, 0, "")

        revoked = await registry.revoke(token.id)
        missing = await registry.revoke("nosuchid")
        again = SecurityRegistry(store, clock)
        await again.load()

        assert revoked is not None and revoked.revoked_at == clock.now()
        assert missing is None
        assert "was revoked" in again.check(token.id, token.secret)

    asyncio.run(scenario())


def test_an_expired_token_is_refused() -> None:
    async def scenario() -> None:
        clock = FakeClock()
        registry = SecurityRegistry(MemoryStore(), clock)
        await registry.load()
        token, _ = await registry.create_token(CA_HASH, 60, "")

        clock.advance(61)

        assert "has expired" in registry.check(token.id, token.secret)

    asyncio.run(scenario())


def test_deleting_a_node_forgets_its_binding() -> None:
    async def scenario() -> None:
        store, clock = MemoryStore(), FakeClock()
        state = ClusterState(store, clock)
        await state.load()
        registry = SecurityRegistry(store, clock)
        await registry.load()
        registry.follow(state)
        node = Node(ObjectMeta(name="web-1"), "127.0.0.1", Resources(1000, 2**30), Resources())
        state.put(node)
        await registry.bind("web-1", "a" * 64)
        await registry.bind("web-2", "b" * 64)

        state.remove("Node", "web-1")
        for _ in range(10):
            await asyncio.sleep(0)
        again = SecurityRegistry(store, clock)
        await again.load()

        assert registry.binding("web-1") is None
        assert again.binding("web-1") is None
        binding = again.binding("web-2")
        assert binding is not None and binding.key_sha256 == "b" * 64

    asyncio.run(scenario())


def test_a_failed_revoke_changes_nothing_and_a_retry_saves_it() -> None:
    async def scenario() -> None:
        store, clock = FaultyStore(MemoryStore()), FakeClock()
        registry = SecurityRegistry(store, clock)
        await registry.load()
        token, _ = await registry.create_token(CA_HASH, 0, "")

        store.failing = True
        with pytest.raises(StoreError):
            await registry.revoke(token.id)
        still_valid = registry.check(token.id, token.secret)
        store.failing = False
        retried = await registry.revoke(token.id)
        after_restart = SecurityRegistry(store, clock)
        await after_restart.load()

        assert still_valid == ""
        assert retried is not None and retried.revoked_at
        assert "was revoked" in after_restart.check(token.id, token.secret)

    asyncio.run(scenario())


def test_a_failed_create_leaves_no_token_behind() -> None:
    async def scenario() -> None:
        store, clock = FaultyStore(MemoryStore()), FakeClock()
        registry = SecurityRegistry(store, clock)
        await registry.load()

        store.failing = True
        with pytest.raises(StoreError):
            await registry.create_token(CA_HASH, 0, "lost")
        listed = registry.tokens()
        store.failing = False
        token, _ = await registry.create_token(CA_HASH, 0, "kept")
        after_restart = SecurityRegistry(store, clock)
        await after_restart.load()

        assert listed == []
        assert [r.id for r in after_restart.tokens()] == [token.id]

    asyncio.run(scenario())


class RacingStore(MemoryStore):
    """A store shared with another master, who changes a document just before our save."""

    def __init__(self) -> None:
        super().__init__()
        self.before_save: list[tuple[str, str]] = []

    def meta_set(self, key: str, value: str) -> None:
        if self.before_save:
            other_key, other_value = self.before_save.pop(0)
            super().meta_set(other_key, other_value)
            raise WriteConflict(f"{key} changed by another writer")
        super().meta_set(key, value)


def test_two_masters_making_tokens_at_once_both_keep_theirs() -> None:
    async def scenario() -> None:
        store, clock = RacingStore(), FakeClock()
        here, there = SecurityRegistry(store, clock), SecurityRegistry(store, clock)
        await here.load()
        await there.load()
        theirs, _ = await there.create_token(CA_HASH, 0, "made on another master")
        # This master has not seen it (no watch here): its save conflicts once, and the
        # change is decided again on the document as stored.
        store.before_save.append(
            ("security.join_tokens", store.meta_get("security.join_tokens") or "")
        )
        mine, _ = await here.create_token(CA_HASH, 0, "made here")

        fresh = SecurityRegistry(store, clock)
        await fresh.load()
        assert fresh.check(theirs.id, theirs.secret) == ""
        assert fresh.check(mine.id, mine.secret) == ""
        assert here.check(theirs.id, theirs.secret) == ""

    asyncio.run(scenario())


def test_a_document_another_master_stored_replaces_memory() -> None:
    async def scenario() -> None:
        store, clock = MemoryStore(), FakeClock()
        here, there = SecurityRegistry(store, clock), SecurityRegistry(store, clock)
        await here.load()
        await there.load()
        token, _ = await there.create_token(CA_HASH, 0, "")

        unknown = here.check(token.id, token.secret)
        here.take("security.join_tokens", store.meta_get("security.join_tokens"))

        assert "not valid" in unknown
        assert here.check(token.id, token.secret) == ""

    asyncio.run(scenario())


def test_joins_at_once_share_their_saves_and_all_persist() -> None:
    async def scenario() -> None:
        store, clock = FaultyStore(MemoryStore()), FakeClock()
        registry = SecurityRegistry(store, clock)
        await registry.load()
        token, _ = await registry.create_token(CA_HASH, 0, "")
        before = store.attempts

        await asyncio.gather(
            *(registry.bind(f"node-{i}", f"{i:064x}") for i in range(200)),
            *(registry.count_use(token.id) for _ in range(200)),
        )
        again = SecurityRegistry(store, clock)
        await again.load()

        # One join at a time took two saves each (400 here); coalesced, a handful.
        assert store.attempts - before <= 4
        assert again.tokens()[0].uses == 200
        assert all(again.binding(f"node-{i}") is not None for i in range(200))

    asyncio.run(scenario())


def test_a_failed_batch_fails_every_join_in_it_and_keeps_memory() -> None:
    async def scenario() -> None:
        store, clock = FaultyStore(MemoryStore()), FakeClock()
        registry = SecurityRegistry(store, clock)
        await registry.load()
        await registry.bind("old", "0" * 64)

        store.failing = True
        outcomes = await asyncio.gather(
            *(registry.bind(f"node-{i}", f"{i:064x}") for i in range(5)), return_exceptions=True
        )
        store.failing = False
        await registry.bind("node-1", f"{1:064x}")

        assert all(isinstance(o, StoreError) for o in outcomes)
        assert registry.binding("node-0") is None
        assert registry.binding("old") is not None and registry.binding("node-1") is not None

    asyncio.run(scenario())
