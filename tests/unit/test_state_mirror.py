"""ClusterState as a follower master uses it: a write gate that refuses with the leader's
sentence, changes applied from another master (and told to subscribers), and a full reload
that makes memory equal to the store."""

from __future__ import annotations

import asyncio
from dataclasses import replace

import pytest

from kernel.clock import FakeClock
from master.model import ObjectMeta, Service, ServicePort
from master.state import ClusterState
from master.store.memory import MemoryStore
from master.store.port import NotLeaderError


def service(name: str, rv: int, port: int = 80) -> Service:
    return Service(
        ObjectMeta(name, uid=f"u-{name}", resource_version=rv),
        {"app": name},
        (ServicePort(port, str(port)),),
    )


def follower() -> tuple[ClusterState, MemoryStore, list[tuple[str, bool]]]:
    store = MemoryStore()
    state = ClusterState(store, FakeClock())
    state.set_write_gate(lambda: "master b is a follower; the leader is a at 10.0.0.1:7400")
    seen: list[tuple[str, bool]] = []
    state.subscribe(lambda kind, obj, deleted, previous: seen.append((obj.meta.name, deleted)))
    return state, store, seen


def test_a_follower_refuses_every_write_with_the_gate_sentence() -> None:
    state, store, seen = follower()

    with pytest.raises(NotLeaderError, match=r"the leader is a at 10\.0\.0\.1:7400"):
        state.put(service("web", 0))
    with pytest.raises(NotLeaderError):
        asyncio.run(state.commit(lambda: state.put(service("web", 0))))
    with pytest.raises(NotLeaderError):
        state.remove("Service", "web")

    assert not state.writable
    assert state.write_refusal().startswith("master b is a follower")
    assert state.objects("Service") == [] and store.load_all() == [] and seen == []


def test_changes_from_the_leader_become_the_truth_and_are_told() -> None:
    state, store, seen = follower()

    state.apply_remote(service("web", 7))
    state.apply_remote(service("web", 9, port=8080))
    state.apply_remote(service("api", 10))
    state.remove_remote("Service", "default/api")
    state.remove_remote("Service", "never-was")
    state.observe_resource_version(12)

    assert state.objects("Service") == [service("web", 9, port=8080)]
    assert seen == [("web", False), ("web", False), ("api", False), ("api", True)]
    assert state.resource_version == 12
    assert store.load_all() == []  # mirrored, not written again


def test_a_reload_makes_memory_equal_to_the_store_and_tells_only_differences() -> None:
    state, _, seen = follower()
    state.apply_remote(service("same", 1))
    state.apply_remote(service("changed", 2))
    state.apply_remote(service("gone", 3))
    seen.clear()

    state.replace_all([service("same", 1), service("changed", 5, 81), service("new", 6)], rv=9)

    assert sorted(o.meta.name for o in state.objects("Service")) == ["changed", "new", "same"]
    assert state.get("Service", "changed") == service("changed", 5, 81)
    assert sorted(seen) == [("changed", False), ("gone", True), ("new", False)]
    assert state.resource_version == 9


def test_a_master_that_takes_over_numbers_after_the_old_leader() -> None:
    state, _, _ = follower()
    state.apply_remote(service("web", 41))
    state.observe_resource_version(44)
    state.set_write_gate(lambda: None)  # elected

    stored = state.put(replace(service("web", 41), selector={"app": "v2"}))

    assert stored.meta.resource_version == 45
    assert stored.meta.uid == "u-web"
