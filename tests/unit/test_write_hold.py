"""Events logged in a burst reach the store at most EVENT_STORE_INTERVAL later, new pods go
with their binding (or POD_HOLD_INTERVAL later), and an object created and removed between
two writes costs the store no row (master/write_hold.py)."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from dataclasses import replace

import pytest

from kernel.clock import FakeClock, SystemClock
from master.model import (
    STATEFULSET_OWNER,
    ConfigMap,
    Container,
    ContainerStatus,
    Event,
    ObjectMeta,
    Pod,
    PodPhase,
    PodSpec,
    PodStatus,
    StoredObject,
    evolve,
)
from master.state import ClusterState
from master.store.memory import MemoryStore
from master.store.port import ObjectKey
from master.write_hold import (
    BOUND_POD_HOLD_INTERVAL,
    EVENT_STORE_INTERVAL,
    POD_HOLD_INTERVAL,
    HeldPods,
    durable_mark,
    events_due,
    holds_pod,
    to_hold,
)


class CountingStore(MemoryStore):
    """A store that counts the rows (puts and deletes) it was asked to write."""

    def __init__(self) -> None:
        super().__init__()
        self.rows = 0

    def write(
        self,
        puts: Sequence[StoredObject],
        deletes: Sequence[ObjectKey],
        meta: Mapping[str, str] | None = None,
    ) -> None:
        self.rows += len(puts) + len(deletes)
        super().write(puts, deletes, meta)


def _config(name: str) -> ConfigMap:
    return ConfigMap(meta=ObjectMeta(name=name), data={"k": "v"})


def _event(name: str, rv: int) -> Event:
    meta = ObjectMeta(name=name, resource_version=rv)
    return Event(meta=meta, involved_kind="Pod", involved_name="p", reason="R", message="m")


def _stored(store: MemoryStore, kind: str) -> set[str]:
    return {o.meta.name for o in store.load_all() if o.kind == kind}


# -- the pure decisions ---------------------------------------------------------------------


def test_events_are_due_once_the_interval_passed_since_they_last_went() -> None:
    assert events_due(100.0, float("-inf"))
    assert not events_due(100.0, 100.0 - EVENT_STORE_INTERVAL + 0.1)
    assert events_due(100.0, 100.0 - EVENT_STORE_INTERVAL)


def test_only_new_events_are_held_and_none_when_due() -> None:
    fresh, folded = ("Event", "default/a"), ("Event", "default/b")
    pod = ("Pod", "default/p")
    pending: dict[ObjectKey, StoredObject] = {
        fresh: _event("a", 3),
        folded: _event("b", 4),
        pod: _config("p"),
    }

    held = to_hold(pending, {fresh, pod}, due=False)

    # The folded count (stored before) and the new pod go; only the new event waits.
    assert set(held) == {fresh}
    assert to_hold(pending, {fresh, pod}, due=True) == {}


def test_durable_mark_stops_below_the_oldest_held_change() -> None:
    assert durable_mark(10, []) == 10
    assert durable_mark(10, [_event("a", 7), _event("b", 9)]) == 6


# -- ClusterState ---------------------------------------------------------------------------


async def _burst_rows(monkeypatch: pytest.MonkeyPatch) -> tuple[int, set[str]]:
    monkeypatch.setattr("master.state.MAX_EVENTS", 2)
    store = CountingStore()
    state = ClusterState(store, FakeClock())
    for i in range(5):
        state.record_event("Pod", f"p{i}", "Created", f"pod p{i} created")
    await state.flush()
    return store.rows, _stored(store, "Event")


def test_events_the_log_trimmed_before_a_write_cost_the_store_nothing(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    rows, stored = asyncio.run(_burst_rows(monkeypatch))

    # The two the log keeps; the three trimmed were neither written nor deleted.
    assert len(stored) == 2
    assert rows == 2


async def _recreated_then_removed() -> set[str]:
    store = MemoryStore()
    state = ClusterState(store, FakeClock())
    state.put(_config("a"))
    await state.flush()
    state.remove("ConfigMap", "a")
    state.put(_config("a"))  # made again before the delete was written: not new to the store
    state.remove("ConfigMap", "a")
    await state.flush()
    return _stored(store, "ConfigMap")


def test_an_object_stored_before_keeps_its_delete_when_made_again_and_removed() -> None:
    assert asyncio.run(_recreated_then_removed()) == set()


async def _held_then_flushed() -> tuple[set[str], set[str], set[str]]:
    store = MemoryStore()
    clock = FakeClock()
    state = ClusterState(store, clock)
    await state.flush(hold_events=True)  # nothing queued: nothing written
    state.record_event("Pod", "p0", "Created", "pod p0 created")
    await state.flush(hold_events=True)  # events never went: due at once
    state.record_event("Pod", "p1", "Created", "pod p1 created")
    state.put(_config("a"))
    await state.flush(hold_events=True)
    in_between = _stored(store, "Event")
    assert _stored(store, "ConfigMap") == {"a"}
    await state.flush()  # one anybody waits on: everything
    after_flush = _stored(store, "Event")
    state.record_event("Pod", "p2", "Created", "pod p2 created")
    clock.advance(EVENT_STORE_INTERVAL)
    await state.flush(hold_events=True)
    return in_between, after_flush, _stored(store, "Event")


def test_the_background_flush_holds_new_events_until_due_and_a_flush_writes_them() -> None:
    in_between, after_flush, when_due = asyncio.run(_held_then_flushed())

    assert len(in_between) == 1  # p1's event held back, the ConfigMap written
    assert len(after_flush) == 2
    assert len(when_due) == 3


async def _flusher_writes_when_due() -> None:
    store = MemoryStore()
    clock = FakeClock()
    state = ClusterState(store, clock, flush_interval=0.001)
    flusher = asyncio.create_task(state.run_flusher())

    async def until(check: object) -> None:
        for _ in range(2000):
            if callable(check) and check():
                return
            await asyncio.sleep(0.005)
        raise AssertionError("not within 10 s")

    try:
        state.record_event("Pod", "p0", "Created", "pod p0 created")
        await until(lambda: len(_stored(store, "Event")) == 1)  # the first go at once
        state.record_event("Pod", "p1", "Created", "pod p1 created")
        state.put(_config("a"))
        await until(lambda: _stored(store, "ConfigMap") == {"a"})
        assert len(_stored(store, "Event")) == 1  # held back
        clock.advance(EVENT_STORE_INTERVAL)
        state.put(_config("b"))
        await until(lambda: len(_stored(store, "Event")) == 2)
    finally:
        flusher.cancel()
        with pytest.raises(asyncio.CancelledError):
            await flusher


def test_the_flusher_writes_held_events_once_due() -> None:
    asyncio.run(_flusher_writes_when_due())


# -- new pods held until bound --------------------------------------------------------------


def _pod(name: str, node: str = "") -> Pod:
    container = Container(name="c", image="nginx:latest")
    return Pod(meta=ObjectMeta(name=name), spec=PodSpec(containers=(container,)), node_name=node)


def _stored_pods(store: MemoryStore) -> dict[str, str]:
    return {o.meta.name: o.node_name for o in store.load_all() if isinstance(o, Pod)}


async def _created_then_bound() -> tuple[dict[str, str], dict[str, str], int, int]:
    store = CountingStore()
    state = ClusterState(store, FakeClock())
    state.put(_pod("p"))
    await state.flush(hold_events=True)
    while_unbound = _stored_pods(store)
    rows_unbound = store.rows
    state.put(evolve(_pod("p"), node_name="n1"))
    await state.flush(hold_events=True)
    return while_unbound, _stored_pods(store), rows_unbound, store.rows


def test_a_new_pod_goes_to_the_store_with_its_binding_in_one_row() -> None:
    while_unbound, bound, rows_unbound, rows = asyncio.run(_created_then_bound())

    assert while_unbound == {}
    assert rows_unbound == 0
    assert bound == {"p": "n1"}
    assert rows == 1  # creation and binding: one row


async def _held_pod_fates() -> dict[str, dict[str, str]]:
    store = CountingStore()
    clock = FakeClock()
    state = ClusterState(store, clock)
    seen: dict[str, dict[str, str]] = {}
    state.put(_pod("waits"))
    state.put(_pod("gone"))
    state.remove("Pod", "gone")  # held, then removed: no row, no delete
    clock.advance(POD_HOLD_INTERVAL - 0.1)
    await state.flush(hold_events=True)
    seen["before due"] = _stored_pods(store)
    clock.advance(0.1)
    await state.flush(hold_events=True)
    seen["due"] = _stored_pods(store)
    state.put(_pod("asked"))
    await state.flush()  # a flush someone waits on: everything
    seen["waited"] = _stored_pods(store)
    state.put(_pod("committed"))
    await state.commit(lambda: state.put(_config("c")))  # an answered write: everything
    seen["commit"] = _stored_pods(store)
    seen["rows"] = {"rows": str(store.rows)}
    return seen


def test_a_held_pod_goes_when_due_or_with_a_flush_someone_waits_on() -> None:
    seen = asyncio.run(_held_pod_fates())

    assert seen["before due"] == {}
    assert seen["due"] == {"waits": ""}
    assert seen["waited"] == {"waits": "", "asked": ""}
    assert seen["commit"] == {"waits": "", "asked": "", "committed": ""}
    assert seen["rows"] == {"rows": "4"}  # "gone" cost nothing; the ConfigMap one


async def _unschedulable_write() -> tuple[dict[str, str], dict[str, str]]:
    store = CountingStore()
    state = ClusterState(store, FakeClock())
    state.put(_pod("pending"))
    await state.flush(hold_events=True)
    held = _stored_pods(store)
    pod = state.get("Pod", "pending")
    assert isinstance(pod, Pod)
    state.put(replace(pod, status=replace(pod.status, reason="Unschedulable")))
    await state.flush(hold_events=True)  # the background write, nothing due
    return held, _stored_pods(store)


def test_a_pod_the_scheduler_found_no_node_goes_with_the_next_background_write() -> None:
    # No binding is coming to merge with: a Pending pod a user lists must not be one a
    # master killed -9 forgets and makes again under another name (test_master_etcd).
    held, written = asyncio.run(_unschedulable_write())

    assert held == {}
    assert written == {"pending": ""}


async def _flushed_mark() -> tuple[int, int]:
    store = MemoryStore()
    state = ClusterState(store, FakeClock())
    state.put(_pod("p"))  # version 1, held
    state.put(_config("a"))  # version 2
    await state.flush(hold_events=True)
    # A waiter on version 2 must not be told so by the background write: version 1 is held.
    marked = state._durable_rv
    await state.flush()
    return marked, state._durable_rv


def test_a_held_pod_keeps_the_durable_mark_below_it() -> None:
    assert asyncio.run(_flushed_mark()) == (0, 2)


async def _flusher_writes_held_pod_when_due() -> float:
    store = MemoryStore()
    clock = SystemClock()
    state = ClusterState(store, clock, flush_interval=0.001)
    flusher = asyncio.create_task(state.run_flusher())
    try:
        started = clock.monotonic()
        state.put(_pod("p"))
        for _ in range(2000):
            if _stored_pods(store):
                return clock.monotonic() - started
            await asyncio.sleep(0.005)
        raise AssertionError("the held pod was not written within 10 s")
    finally:
        flusher.cancel()
        with pytest.raises(asyncio.CancelledError):
            await flusher


def test_the_flusher_writes_a_held_pod_once_due_with_nothing_else_queued(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr("master.write_hold.POD_HOLD_INTERVAL", 0.2)

    waited = asyncio.run(_flusher_writes_held_pod_when_due())

    assert waited >= 0.2  # held until due, then written with nothing else to wake the flusher


# -- a Deployment's new pod held from its binding until its agent's first report ---------------

# What the scheduler's binding leaves (master/controllers/manager.py _bind).
BOUND = PodStatus(reason="ContainerCreating")
RUNNING = PodStatus(
    phase=PodPhase.RUNNING,
    host_ip="127.0.0.1",
    ready=True,
    container_statuses=(ContainerStatus(name="c", state="running", ready=True),),
)


def _owned(name: str, owner: str = "web") -> Pod:
    return replace(_pod(name), owner=owner)


def test_only_a_deployments_bound_pod_not_yet_reported_waits_for_its_report() -> None:
    bound = evolve(_owned("p"), node_name="n1", status=BOUND)

    assert holds_pod(bound, unstored=True)
    assert not holds_pod(bound, unstored=False)  # a row stored: a change goes at once
    assert not holds_pod(evolve(bound, status=RUNNING), unstored=True)  # reported
    assert not holds_pod(evolve(bound, deletion_requested_at=5.0), unstored=True)
    # One name, at most one copy running: a StatefulSet's binding goes at once; so does a
    # user's pod's (no owner).
    assert not holds_pod(evolve(bound, owner=STATEFULSET_OWNER + "db"), unstored=True)
    assert not holds_pod(evolve(bound, owner=""), unstored=True)


async def _bound_then_reported() -> dict[str, object]:
    store = CountingStore()
    state = ClusterState(store, FakeClock())
    seen: dict[str, object] = {}
    state.put(_owned("p"))
    await state.flush(hold_events=True)
    state.put(evolve(_owned("p"), node_name="n1", status=BOUND))
    await state.flush(hold_events=True)  # the background write between binding and report
    seen["bound"] = _stored_pods(store)
    seen["rows bound"] = store.rows
    pod = state.get("Pod", "p")
    assert isinstance(pod, Pod)
    state.put(evolve(pod, status=RUNNING))
    await state.flush(hold_events=True)
    seen["reported"] = _stored_pods(store)
    seen["rows"] = store.rows
    stored = [o for o in store.load_all() if isinstance(o, Pod)]
    seen["stored phase"] = stored[0].status.phase if stored else None
    return seen


def test_a_deployments_pod_goes_to_the_store_with_its_first_report_in_one_row() -> None:
    seen = asyncio.run(_bound_then_reported())

    assert seen["bound"] == {}
    assert seen["rows bound"] == 0
    assert seen["reported"] == {"p": "n1"}
    assert seen["stored phase"] == PodPhase.RUNNING
    assert seen["rows"] == 1  # creation, binding and first report: one row


async def _bound_pod_fates() -> dict[str, object]:
    store = CountingStore()
    clock = FakeClock()
    state = ClusterState(store, clock)
    seen: dict[str, object] = {}
    # Created long before its binding: the binding's time counts, not the creation's.
    state.put(_owned("slow"))
    clock.advance(POD_HOLD_INTERVAL - 1.0)
    state.put(evolve(_owned("slow"), node_name="n1", status=BOUND))
    clock.advance(BOUND_POD_HOLD_INTERVAL - 0.1)
    await state.flush(hold_events=True)
    seen["before due"] = _stored_pods(store)
    seen["mark while held"] = state._durable_rv
    clock.advance(0.1)
    await state.flush(hold_events=True)
    seen["due"] = _stored_pods(store)
    state.put(evolve(_owned("read"), node_name="n2", status=BOUND))
    await state.durable_for_readers()  # a user's read: what it shows is in the store
    seen["read"] = _stored_pods(store)
    state.put(evolve(_owned("sts"), node_name="n3", status=BOUND, owner=STATEFULSET_OWNER + "db"))
    await state.flush(hold_events=True)
    seen["statefulset"] = _stored_pods(store)
    return seen


def test_a_bound_pod_goes_when_due_after_its_binding_or_with_a_read() -> None:
    seen = asyncio.run(_bound_pod_fates())

    assert seen["before due"] == {}
    assert seen["mark while held"] == 0  # its versions are not called durable
    assert seen["due"] == {"slow": "n1"}
    assert seen["read"] == {"slow": "n1", "read": "n2"}
    assert seen["statefulset"] == {"slow": "n1", "read": "n2", "sts": "n3"}


def test_the_oldest_held_version_is_the_least_of_either_queue() -> None:
    held = HeldPods()

    def at(name: str, rv: int, node: str = "") -> Pod:
        return evolve(_owned(name), node_name=node, meta=ObjectMeta(name=name, resource_version=rv))

    held.hold(("Pod", "default/a"), at("a", 5), 0.0)
    held.hold(("Pod", "default/b"), at("b", 3), 0.0)
    held.hold(("Pod", "default/c"), at("c", 9), 0.0)
    assert held.oldest_version() == 5  # the unbound: in their order of holding
    # Bound in another order than their creation: each keeps its first version.
    held.hold(("Pod", "default/c"), at("c", 12, "n1"), 1.0)
    held.hold(("Pod", "default/b"), at("b", 13, "n1"), 1.0)
    assert held.take(("Pod", "default/a")) is not None
    assert held.oldest_version() == 3
    assert held.take(("Pod", "default/b")) is not None
    assert held.oldest_version() == 9
    assert held.next_due() == 1.0 + BOUND_POD_HOLD_INTERVAL
    assert [k for k, _ in held.take_due(1.0 + BOUND_POD_HOLD_INTERVAL)] == [("Pod", "default/c")]
    assert held.oldest_version() is None
    assert len(held) == 0
