"""ClusterState.commit: a user write is durable before anyone sees it, and a failed one leaves
no trace — not in memory, not on disk, not later (the store is failed through a FaultyStore)."""

from __future__ import annotations

import asyncio
from dataclasses import replace

import pytest

from kernel.clock import FakeClock
from master.api.kube.resources import Resource
from master.api.kube.writes import app_error
from master.app.errors import AppError, commit
from master.model import (
    Container,
    Deployment,
    DeploymentStatus,
    ObjectMeta,
    PodSpec,
    PodTemplate,
    StoredObject,
)
from master.state import ClusterState
from master.store.memory import MemoryStore
from master.store.port import StoreError
from tests.unit.faulty_store import FaultyStore


def _deployment(replicas: int) -> Deployment:
    return Deployment(
        meta=ObjectMeta(name="web"),
        replicas=replicas,
        selector={"app": "web"},
        template=PodTemplate(
            labels={"app": "web"},
            spec=PodSpec(containers=(Container(name="web", image="nginx:latest"),)),
        ),
    )


def _setup() -> tuple[FaultyStore, MemoryStore, ClusterState, list[tuple[str, bool]]]:
    inner = MemoryStore()
    store = FaultyStore(inner)
    state = ClusterState(store, FakeClock())
    seen: list[tuple[str, bool]] = []
    state.subscribe(lambda kind, obj, deleted, previous: seen.append((obj.meta.name, deleted)))
    return store, inner, state, seen


def _stored(inner: MemoryStore) -> dict[str, StoredObject]:
    return {o.meta.name: o for o in inner.load_all()}


def _scale(state: ClusterState, replicas: int) -> None:
    dep = state.get("Deployment", "web")
    assert isinstance(dep, Deployment)
    if dep.replicas != replicas:
        state.put(replace(dep, replicas=replicas))


def test_a_failed_commit_leaves_memory_disk_and_subscribers_untouched() -> None:
    async def scenario() -> None:
        store, inner, state, seen = _setup()
        store.failing = True

        with pytest.raises(StoreError):
            await state.commit(lambda: state.put(_deployment(2)))
        in_memory = state.get("Deployment", "web")
        store.failing = False
        await state.flush()  # whatever the background flusher would save later

        assert in_memory is None
        assert seen == []
        assert _stored(inner) == {}

    asyncio.run(scenario())


def test_a_retry_after_a_failed_commit_is_saved_and_published() -> None:
    async def scenario() -> None:
        store, inner, state, seen = _setup()
        store.failing = True
        with pytest.raises(StoreError):
            await state.commit(lambda: state.put(_deployment(2)))

        store.failing = False
        stored = await state.commit(lambda: state.put(_deployment(2)))

        assert state.get("Deployment", "web") == stored
        assert _stored(inner)["web"] == stored
        assert seen == [("web", False)]

    asyncio.run(scenario())


def test_a_write_is_invisible_until_it_is_durable() -> None:
    async def scenario() -> None:
        store, inner, state, seen = _setup()
        await state.commit(lambda: state.put(_deployment(1)))
        store.hold()

        write = asyncio.create_task(state.commit(lambda: _scale(state, 5)))
        await asyncio.to_thread(store.entered.wait, 5)
        during = state.get("Deployment", "web")
        seen_during = list(seen)
        store.release()
        await write

        assert isinstance(during, Deployment) and during.replicas == 1
        assert seen_during == [("web", False)]
        after = state.get("Deployment", "web")
        assert isinstance(after, Deployment) and after.replicas == 5
        assert _stored(inner)["web"] == after

    asyncio.run(scenario())


def test_an_identical_write_during_a_flush_waits_for_it_to_be_durable() -> None:
    async def scenario() -> None:
        store, inner, state, _ = _setup()
        await state.commit(lambda: state.put(_deployment(1)))
        store.hold()

        first = asyncio.create_task(state.commit(lambda: _scale(state, 3)))
        await asyncio.to_thread(store.entered.wait, 5)
        second = asyncio.create_task(state.commit(lambda: _scale(state, 3)))
        done, _ = await asyncio.wait({second}, timeout=0.2)
        answered_early = bool(done)
        store.release()
        await asyncio.gather(first, second)

        assert not answered_early, "the second scale answered before the first was durable"
        saved = _stored(inner)["web"]
        assert isinstance(saved, Deployment) and saved.replicas == 3

    asyncio.run(scenario())


def test_an_identical_write_after_a_failed_one_saves_it_itself() -> None:
    async def scenario() -> None:
        store, inner, state, _ = _setup()
        await state.commit(lambda: state.put(_deployment(1)))
        store.hold()
        # The first write fails, the second's works: set before either runs, since the
        # second may reach the store (in its thread) before this coroutine runs again.
        store.fail_next(1)
        first = asyncio.create_task(state.commit(lambda: _scale(state, 3)))
        await asyncio.to_thread(store.entered.wait, 5)
        second = asyncio.create_task(state.commit(lambda: _scale(state, 3)))
        store.release()
        with pytest.raises(StoreError):
            await first

        await second

        saved = _stored(inner)["web"]
        assert isinstance(saved, Deployment) and saved.replicas == 3

    asyncio.run(scenario())


def test_a_failed_commit_requeues_only_what_memory_already_held() -> None:
    async def scenario() -> None:
        store, inner, state, _ = _setup()
        await state.commit(lambda: state.put(_deployment(1)))
        dep = state.get("Deployment", "web")
        assert isinstance(dep, Deployment)
        # A controller's status update: in memory at once, queued for the flusher.
        state.put(replace(dep, status=DeploymentStatus(replicas=1)))
        store.failing = True

        with pytest.raises(StoreError):
            await state.commit(lambda: state.put(replace(_deployment(9), meta=ObjectMeta("db"))))
        store.failing = False
        await state.flush()

        saved = _stored(inner)
        assert set(saved) == {"web"}
        assert isinstance(saved["web"], Deployment) and saved["web"].status.replicas == 1

    asyncio.run(scenario())


def test_a_controller_change_during_a_commit_does_not_undo_the_user_write() -> None:
    async def scenario() -> None:
        store, inner, state, _ = _setup()
        await state.commit(lambda: state.put(_deployment(1)))
        store.hold()

        write = asyncio.create_task(state.commit(lambda: _scale(state, 4)))
        await asyncio.to_thread(store.entered.wait, 5)
        old = state.get("Deployment", "web")
        assert isinstance(old, Deployment)
        racing = state.put(replace(old, status=DeploymentStatus(replicas=1)))
        store.release()
        await write
        await state.flush()

        now = state.get("Deployment", "web")
        assert isinstance(now, Deployment) and now.replicas == 4
        assert now.meta.resource_version > racing.meta.resource_version
        assert _stored(inner)["web"] == now

    asyncio.run(scenario())


def test_a_removal_is_published_only_once_durable() -> None:
    async def scenario() -> None:
        store, inner, state, seen = _setup()
        await state.commit(lambda: state.put(_deployment(1)))
        store.failing = True

        with pytest.raises(StoreError):
            await state.commit(lambda: state.remove("Deployment", "web"))
        kept = state.get("Deployment", "web")
        store.failing = False
        await state.commit(lambda: state.remove("Deployment", "web"))

        assert kept is not None
        assert state.get("Deployment", "web") is None
        assert _stored(inner) == {}
        assert seen == [("web", False), ("web", True)]

    asyncio.run(scenario())


def test_the_kubernetes_api_answers_a_store_failure_with_500_not_a_conflict() -> None:
    async def scenario() -> None:
        store, _, state, _ = _setup()
        store.failing = True
        with pytest.raises(AppError) as refused:
            await commit(state, lambda: state.put(_deployment(2)))

        answer = app_error(refused.value, Resource("deployments", "Deployment", "apps"), "web")

        assert refused.value.code == "internal"
        assert (answer.code, answer.reason) == (500, "InternalError")
        assert answer.message.startswith("nothing was changed")

    asyncio.run(scenario())
