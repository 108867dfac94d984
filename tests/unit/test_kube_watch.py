"""The HTTP API's watch window: changes by resource version, ADDED/MODIFIED/DELETED, 410."""

from __future__ import annotations

import asyncio

import pytest

import master.api.kube.watch as watch_module
from kernel.clock import FakeClock
from master.api.kube.watch import TooOld, WatchHub
from master.model import ConfigMap, ObjectMeta
from master.state import ClusterState
from master.store.memory import MemoryStore


def _cm(name: str, value: str) -> ConfigMap:
    return ConfigMap(meta=ObjectMeta(name=name), data={"v": value})


def test_a_watch_replays_changes_after_its_version_then_follows_live_ones() -> None:
    async def run() -> None:
        state = ClusterState(MemoryStore(), FakeClock())
        hub = WatchHub(state)
        first = state.put(_cm("a", "1"))
        state.put(_cm("a", "2"))
        state.put(_cm("b", "1"))
        watcher, backlog = hub.open("ConfigMap", first.meta.resource_version)
        assert [(c.type, c.obj.meta.name) for c in backlog] == [
            ("MODIFIED", "a"),
            ("ADDED", "b"),
        ]
        state.remove("ConfigMap", "a")
        live = watcher.queue.get_nowait()
        assert live is not None
        assert (live.type, live.obj.meta.name, live.rv) == ("DELETED", "a", state.resource_version)
        state.put(_cm("x", "1"))
        added = watcher.queue.get_nowait()
        assert added is not None and (added.type, added.obj.meta.name) == ("ADDED", "x")
        hub.release(watcher)
        hub.close()

    asyncio.run(run())


def test_a_version_older_than_the_window_is_gone() -> None:
    async def run() -> None:
        state = ClusterState(MemoryStore(), FakeClock())
        state.put(_cm("before", "1"))
        hub = WatchHub(state, history=3)
        with pytest.raises(TooOld):
            hub.open("ConfigMap", 0)
        for i in range(5):
            state.put(_cm("a", str(i)))
        with pytest.raises(TooOld):
            hub.open("ConfigMap", state.resource_version - 4)
        watcher, backlog = hub.open("ConfigMap", state.resource_version - 2)
        assert [c.obj.data["v"] for c in backlog if isinstance(c.obj, ConfigMap)] == ["3", "4"]
        hub.release(watcher)
        hub.close()

    asyncio.run(run())


def test_a_slow_watcher_is_cut_off_not_buffered_forever(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(watch_module, "QUEUE_LIMIT", 3)

    async def run() -> None:
        state = ClusterState(MemoryStore(), FakeClock())
        hub = WatchHub(state)
        watcher, _ = hub.open("ConfigMap", None)
        for i in range(10):
            state.put(_cm("a", str(i)))
        assert watcher.closed
        items = [watcher.queue.get_nowait() for _ in range(watcher.queue.qsize())]
        assert items[-1] is None and len(items) == 4
        hub.close()

    asyncio.run(run())
