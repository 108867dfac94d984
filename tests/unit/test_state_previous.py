"""ClusterState tells each listener a change's previous version: the one that listener was
told last (or that memory held when it subscribed), on every path that changes memory —
a controller's put and remove, a commit's publish (also when a controller changed the
object while the commit was in flight), another master's change (apply_remote,
remove_remote), a full reload (replace_all, also after memory moved during the store
read) and the event log's trim. A deletion's previous version is the version removed.

The incremental listeners that rely on it (the scheduler's PodIndex, OwnerCounts) keep no
copy of the pods: they are checked here against the full computation over the same
random sequences of all those paths."""

from __future__ import annotations

import asyncio
import random
import threading
from dataclasses import replace

import pytest

from kernel.clock import FakeClock
from master.controllers.owner_counts import OwnerCounts, PodCounts
from master.model import (
    KINDS,
    Container,
    Event,
    Node,
    NodeStatus,
    ObjectMeta,
    Pod,
    PodSpec,
    Resources,
    StoredObject,
    key_of,
)
from master.scheduler import build_node_infos
from master.scheduler.pod_index import PodIndex
from master.state import ClusterState
from master.store.memory import MemoryStore
from tests.unit.faulty_store import FaultyStore

NODES = ("n0", "n1", "n2")
OWNERS = ("", "web", "api")


class Shadow:
    """A listener that mirrors memory only from what it is told, noting every change whose
    previous version is not (the same object as) the one it was told last."""

    def __init__(self, state: ClusterState) -> None:
        self.held = {(k, key_of(o)): o for k in KINDS for o in state.objects(k)}
        self.wrong: list[str] = []
        self.told = 0

    def __call__(
        self, kind: str, obj: StoredObject, deleted: bool, previous: StoredObject | None
    ) -> None:
        self.told += 1
        key = (kind, key_of(obj))
        if self.held.get(key) is not previous:
            self.wrong.append(f"{key}: previous {previous!r}, told {self.held.get(key)!r}")
        if deleted:
            if previous is not obj:
                self.wrong.append(f"{key}: a deletion's previous is not the removed version")
            self.held.pop(key, None)
        else:
            self.held[key] = obj

    def check(self, state: ClusterState) -> None:
        assert self.wrong == []
        assert self.held == {(k, key_of(o)): o for k in KINDS for o in state.objects(k)}


def _pod(rng: random.Random, name: str, rv: int = 0) -> Pod:
    requests = Resources(rng.choice([0, 100, 250]), rng.choice([0, 2**20]))
    return Pod(
        meta=ObjectMeta(name=name, uid=f"u-{name}", resource_version=rv),
        spec=PodSpec(containers=(Container(name="c", image="nginx", requests=requests),)),
        owner=rng.choice(OWNERS),
        node_name=rng.choice([*NODES, ""]),
        template_hash=rng.choice(["h1", "h2"]),
    )


def _node(name: str, ready: bool, rv: int = 0) -> Node:
    room = Resources(4000, 8 * 2**30)
    return Node(
        meta=ObjectMeta(name=name, uid=f"u-{name}", resource_version=rv),
        address="127.0.0.1",
        capacity=room,
        allocatable=room,
        status=NodeStatus(ready=ready),
    )


def _changed(rng: random.Random, pod: Pod, rv: int = 0) -> Pod:
    """The pod with a random change of what the listeners derive from it."""
    meta = replace(pod.meta, resource_version=rv) if rv else pod.meta
    return replace(
        pod,
        meta=meta,
        node_name=rng.choice([*NODES, ""]),
        owner=rng.choice(OWNERS),
        deletion_requested_at=rng.choice([0.0, 0.0, 5.0]),
    )


def _another_masters_view(rng: random.Random, state: ClusterState) -> list[StoredObject]:
    """Everything in memory, some of it changed, some gone, some new (what another
    master stored meanwhile), as a store would hold it."""
    rv = state.resource_version
    view: list[StoredObject] = []
    for kind in KINDS:
        for obj in state.objects(kind):
            roll = rng.random()
            if roll < 0.15:
                continue
            if roll < 0.4 and isinstance(obj, Pod):
                rv += 1
                obj = _changed(rng, obj, rv)
            view.append(obj)
    for _ in range(rng.randrange(3)):
        rv += 1
        view.append(_pod(rng, f"r{rng.randrange(40)}", rv))
    return view


async def _step(rng: random.Random, state: ClusterState, store: MemoryStore) -> None:
    pods = state.pods()
    roll = rng.random()
    if roll < 0.2 or not pods:
        state.put(_pod(rng, f"p{rng.randrange(40)}"))
    elif roll < 0.35:
        state.put(_changed(rng, rng.choice(pods)))
    elif roll < 0.42:
        pod = rng.choice(pods)
        state.remove("Pod", pod.meta.name)
    elif roll < 0.5:
        state.put(_node(rng.choice(NODES), rng.random() < 0.7))
    elif roll < 0.58:
        # A user's write: staged, then published once durable.
        pod, other = rng.choice(pods), rng.choice(pods)

        def plan() -> None:
            state.put(_changed(rng, pod))
            state.put(_pod(rng, f"p{rng.randrange(40)}"))
            state.remove("Pod", other.meta.name)

        await state.commit(plan)
    elif roll < 0.7:
        # Another master's change, seen in the store's watch.
        rv = state.resource_version + 1
        state.apply_remote(_changed(rng, rng.choice(pods), rv))
        state.observe_resource_version(rv)
    elif roll < 0.76:
        state.remove_remote("Pod", key_of(rng.choice(pods)))
    elif roll < 0.84:
        state.replace_all(_another_masters_view(rng, state), state.resource_version + 5)
    elif roll < 0.92:
        # Another master wrote the store; this one reads it all again.
        await state.flush()
        view = _another_masters_view(rng, state)
        stored = {(o.kind, key_of(o)) for o in view}
        gone = [(o.kind, key_of(o)) for o in store.load_all() if (o.kind, key_of(o)) not in stored]
        store.write(view, gone, {"resource_version": str(state.resource_version + 5)})
        await state.reload()
    else:
        state.record_event("Pod", rng.choice(pods).meta.name, "Tested", f"m{rng.randrange(9)}")


def _check_incremental(state: ClusterState, index: PodIndex, counts: OwnerCounts) -> None:
    nodes = [n for n in state.objects("Node") if isinstance(n, Node)]
    assert index.node_infos() == build_node_infos(nodes, state.pods())
    pending = [p for p in state.pods() if not p.node_name and not p.deletion_requested_at]
    assert sorted(key_of(p) for p in index.pending()) == sorted(key_of(p) for p in pending)
    for owner in OWNERS[1:]:
        assert counts.counts("default", owner) == PodCounts.of(state.pods_of_owner(owner))


@pytest.mark.parametrize("seed", range(12))
def test_every_path_tells_the_previous_version_the_listener_was_told_last(
    seed: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("master.state.MAX_EVENTS", 6)  # the trim's removals come often

    async def scenario() -> None:
        rng = random.Random(seed)
        store = MemoryStore()
        state = ClusterState(store, FakeClock())
        for _ in range(20):
            await _step(rng, state, store)
        shadow = Shadow(state)
        state.subscribe(shadow)
        nodes = [n for n in state.objects("Node") if isinstance(n, Node)]
        index = PodIndex(nodes, state.pods())
        state.subscribe(index.on_change)
        counts = OwnerCounts(state.pods())
        state.subscribe(counts.on_change)
        for i in range(250):
            await _step(rng, state, store)
            if i % 10 == 0:
                shadow.check(state)
                _check_incremental(state, index, counts)
        shadow.check(state)
        _check_incremental(state, index, counts)
        assert shadow.told > 250

    asyncio.run(scenario())


def test_a_deletion_tells_the_last_version_also_one_a_controller_wrote_during_the_commit() -> None:
    async def scenario() -> None:
        store = FaultyStore(MemoryStore())
        state = ClusterState(store, FakeClock())
        told: list[tuple[bool, StoredObject, StoredObject | None]] = []
        state.subscribe(lambda kind, obj, deleted, previous: told.append((deleted, obj, previous)))
        first = state.put(_node("n0", True))
        store.hold()
        removal = asyncio.create_task(state.commit(lambda: state.remove("Node", "n0")))
        await asyncio.to_thread(store.entered.wait, 5)
        racing = state.put(replace(first, status=NodeStatus(ready=False)))
        store.release()
        await removal

        assert state.get("Node", "n0") is None
        assert told == [(False, first, None), (False, racing, first), (True, racing, racing)]

    asyncio.run(scenario())


class _HeldReads(MemoryStore):
    """A MemoryStore whose load_all waits until released (a reload in flight)."""

    def __init__(self) -> None:
        super().__init__()
        self.reading = threading.Event()
        self.go = threading.Event()

    def load_all(self) -> list[StoredObject]:
        objects = super().load_all()
        self.reading.set()
        self.go.wait(timeout=10)
        return objects


def test_a_reload_after_memory_moved_during_its_read_tells_the_version_memory_held() -> None:
    async def scenario() -> None:
        store = _HeldReads()
        state = ClusterState(store, FakeClock())
        rng = random.Random(3)
        pod = state.put(replace(_pod(rng, "a"), owner="web", node_name="n0"))
        await state.flush()
        index = PodIndex([_node("n0", True)], state.pods())
        state.subscribe(index.on_change)
        counts = OwnerCounts(state.pods())
        state.subscribe(counts.on_change)
        told: list[tuple[StoredObject, StoredObject | None]] = []
        state.subscribe(lambda kind, obj, deleted, previous: told.append((obj, previous)))

        reload = asyncio.create_task(state.reload())
        await asyncio.to_thread(store.reading.wait, 5)
        # A controller moves the pod while the store is read (its write is not stored).
        moved = state.put(replace(pod, owner="api", node_name="n1"))
        store.go.set()
        await reload

        back = state.pod("a")
        assert back == pod  # the store is the truth
        assert told == [(moved, pod), (back, moved)]
        assert counts.counts("default", "web") == PodCounts.of([pod])
        assert counts.counts("default", "api") == PodCounts()
        infos = index.node_infos()
        assert infos["n0"].pod_count == 1

    asyncio.run(scenario())


def test_a_trimmed_event_tells_its_last_version(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("master.state.MAX_EVENTS", 1)
    state = ClusterState(MemoryStore(), FakeClock())
    told: list[tuple[bool, StoredObject, StoredObject | None]] = []
    state.subscribe(lambda kind, obj, deleted, previous: told.append((deleted, obj, previous)))
    first = state.record_event("Pod", "a", "Tested", "one")
    again = state.record_event("Pod", "a", "Tested", "one")  # a repeat: counted
    other = state.record_event("Pod", "b", "Tested", "two")  # trims the first

    assert isinstance(again, Event) and again.count == 2
    assert told == [
        (False, first, None),
        (False, again, first),
        (False, other, None),
        (True, again, again),
    ]
