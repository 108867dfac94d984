"""Which nodes a lifecycle pass looks at (master/controllers/node_watch.py), and that the
controller manager's pass over a large healthy cluster looks at none of them.

The pass used to read every node's lease four times a second; now a healthy node is
looked at once per lease (when its deadline comes, and put back if heard from), a
touched or unwell node on the next pass.
"""

from __future__ import annotations

from kernel.clock import FakeClock
from master.controllers.manager import ControllerManager
from master.controllers.node_watch import NodeWatch, alive_until
from master.controllers.nodes import LeaseTable
from master.model import Node
from master.state import ClusterState
from master.store import MemoryStore
from tests.unit.ready_nodes import add_ready_nodes

GIB = 2**30
_NOTHING: dict[str, float | None] = {}


def _until(at: float) -> dict[str, float | None]:
    return {"a": at}


def test_alive_until_is_the_earlier_of_the_lease_and_the_session_grace() -> None:
    assert alive_until(None, 3.0, None, 1.0) is None
    assert alive_until(10.0, 3.0, None, 1.0) == 13.0
    assert alive_until(10.0, 3.0, 11.0, 1.0) == 12.0
    assert alive_until(10.0, 3.0, 12.5, 1.0) == 13.0


def test_a_healthy_node_is_looked_at_only_when_its_deadline_passes() -> None:
    watch = NodeWatch()
    until: dict[str, float | None] = {"a": 13.0, "b": 20.0}
    watch.touch_all(["a", "b"])
    assert watch.take(10.0, until.get) == {"a", "b"}
    watch.healthy("a", 13.0)
    watch.healthy("b", 20.0)
    asked: list[str] = []

    def until_of(node: str) -> float | None:
        asked.append(node)
        return until[node]

    assert watch.take(12.0, until_of) == set()
    assert watch.take(13.0, until_of) == set()  # alive up to and at its deadline
    assert asked == []
    # a's deadline passed without a heartbeat: taken (and only a's lease was read).
    assert watch.take(13.5, until_of) == {"a"}
    assert asked == ["a"]


def test_a_node_heard_from_since_is_put_back_with_its_new_deadline() -> None:
    watch = NodeWatch()
    watch.healthy("a", 13.0)
    assert watch.take(14.0, _until(16.0).get) == set()  # renewed at 13: until 16
    assert watch.watched() == 1
    assert watch.take(15.0, _until(16.0).get) == set()
    assert watch.take(16.5, _until(16.0).get) == {"a"}


def test_touched_and_unwell_nodes_are_taken_on_every_pass_until_healthy() -> None:
    watch = NodeWatch()
    watch.healthy("a", 100.0)
    watch.touch("a")
    assert watch.take(1.0, _NOTHING.get) == {"a"}
    watch.unwell("a")
    assert watch.take(2.0, _NOTHING.get) == {"a"}
    assert watch.take(3.0, _NOTHING.get) == {"a"}
    watch.healthy("a", 100.0)
    assert watch.take(4.0, _NOTHING.get) == set()


def test_an_earlier_deadline_replaces_a_later_one_and_stale_entries_are_skipped() -> None:
    watch = NodeWatch()
    watch.healthy("a", 100.0)
    watch.touch("a")
    assert watch.take(1.0, _NOTHING.get) == {"a"}
    watch.healthy("a", 5.0)  # its session ended: alive only for the grace
    assert watch.take(6.0, _until(5.0).get) == {"a"}
    watch.forget("a")
    assert watch.take(200.0, _until(300.0).get) == set()  # the stale 100 s entry
    for i in range(1000):  # many put-backs leave the heap bounded
        watch.healthy("b", float(i))
    assert len(watch._heap) <= 4 * watch.watched() + 64


# -- the controller manager's pass ---------------------------------------------------------


class CountingLeases(LeaseTable):
    """A lease table that counts the leases read (what the pass used to do per node)."""

    def __init__(self) -> None:
        super().__init__()
        self.reads = 0

    def last_seen(self, node: str) -> float | None:
        self.reads += 1
        return super().last_seen(node)


def _cluster(nodes: int) -> tuple[FakeClock, ClusterState, CountingLeases, ControllerManager]:
    clock = FakeClock()
    state = ClusterState(MemoryStore(), clock)
    leases = CountingLeases()
    manager = ControllerManager(state, clock, leases, lease_seconds=3.0)
    add_ready_nodes(state, leases, clock, nodes)
    return clock, state, leases, manager


def _ready(state: ClusterState, name: str) -> bool:
    node = state.get("Node", name)
    assert isinstance(node, Node)
    return node.status.ready


def test_a_pass_over_a_healthy_cluster_reads_no_lease_and_still_finds_the_silent_node() -> None:
    clock, state, leases, manager = _cluster(500)
    manager.run_pass()  # the first pass looks at every node
    assert leases.reads >= 500
    for _ in range(11):  # heartbeats every 0.25 s from all but n7, passes between
        clock.advance(0.25)
        for i in range(500):
            if i != 7:
                leases.renew(f"n{i}", clock.monotonic())
        leases.reads = 0
        manager.run_pass()
        assert leases.reads == 0  # no deadline came: nothing looked at
    clock.advance(0.3)  # 3.05 s after n7's last heartbeat, 0.05 s after the others'
    for i in range(500):
        if i != 7:
            leases.renew(f"n{i}", clock.monotonic())
    leases.reads = 0
    manager.run_pass()
    assert not _ready(state, "n7")
    assert all(_ready(state, f"n{i}") for i in range(500) if i != 7)
    # The other 499 were due at 3.0 s: each read once and put back with its new deadline.
    assert leases.reads < 2 * 500
    leases.reads = 0
    manager.run_pass()
    assert leases.reads <= 4  # n7 alone, judged on every pass while it is unwell


def test_a_session_that_ends_is_judged_at_its_grace_not_its_lease() -> None:
    clock, state, leases, manager = _cluster(3)
    manager.run_pass()
    leases.session_ended("n1", clock.monotonic())
    clock.advance(0.5)
    manager.run_pass()
    assert _ready(state, "n1")
    clock.advance(0.6)  # 1.1 s after its session ended (grace 1 s), lease still running
    leases.renew("n0", clock.monotonic())
    leases.renew("n2", clock.monotonic())
    manager.run_pass()
    assert not _ready(state, "n1")
    assert _ready(state, "n0") and _ready(state, "n2")


def test_a_node_marked_not_ready_by_a_write_is_judged_and_revived_by_its_heartbeat() -> None:
    clock, state, leases, manager = _cluster(2)
    manager.run_pass()
    node = state.get("Node", "n1")
    assert isinstance(node, Node)
    from dataclasses import replace

    state.put(replace(node, status=replace(node.status, ready=False)))
    clock.advance(0.25)
    leases.renew("n1", clock.monotonic())
    manager.run_pass()
    assert _ready(state, "n1")  # the write touched it: judged, alive, Ready again
