"""A node is not blamed for heartbeats the master's own loop could not read
(master/controllers/loop_held.py), with a fake clock.

The hollow bench at 5,000 nodes / 50,000 pods: the loop ran agents' status reports for
minutes, heartbeats sent on time were read 25-114 s late, and 4,049 healthy nodes went
NotReady (their pods replaced) although the controller itself ticked on time, so the
stall check (lifecycle.stalled) never fired.
"""

from __future__ import annotations

import random

import pytest

from kernel.clock import FakeClock
from master.controllers.lifecycle import (
    Moment,
    NodeHealthSettings,
    NodeSignals,
    SetNodeCondition,
    reconcile_nodes,
)
from master.controllers.loop_held import HeldLedger
from master.controllers.manager import ControllerManager
from master.controllers.nodes import LeaseTable
from master.model import Node, NodeStatus, ObjectMeta, Resources
from master.state import ClusterState
from master.store import MemoryStore
from tests.unit.ready_nodes import add_ready_node


def _brute_held(spans: list[tuple[float, float]], since: float, now: float) -> float:
    return sum(max(0.0, min(end, now) - max(start, since)) for start, end in spans)


@pytest.mark.parametrize("seed", range(10))
def test_held_between_equals_the_overlap_of_every_noted_span(seed: int) -> None:
    rng = random.Random(seed)
    ledger = HeldLedger()
    spans: list[tuple[float, float]] = []
    t = 0.0
    for _ in range(300):
        asked = 0.05
        late = rng.choice([0.0, 0.01, 0.06, 0.3, 2.0])
        t += asked + late
        ledger.note(t, late)
        if late >= 0.05:
            spans.append((t - late, t))
    for _ in range(200):
        since = rng.uniform(-1.0, t)
        now = rng.uniform(since, t + 1.0)
        assert ledger.held_between(since, now) == pytest.approx(_brute_held(spans, since, now))
    assert ledger.held_between(None, t) == 0.0


def test_a_late_heartbeat_from_a_held_loop_keeps_the_node_ready_in_the_pure_decision() -> None:
    settings = NodeHealthSettings(lease_seconds=3.0)
    room = Resources(2000, 2**30)
    node = Node(ObjectMeta(name="n1"), "127.0.0.1", room, room, status=NodeStatus(ready=True))
    now = Moment(wall=1000.0, mono=10.0)
    # Silent for 10 s, 8 of them with the master's loop held: 2 s of real silence.
    excused = NodeSignals(last_seen=0.0, held=8.0)
    # (nine other nodes healthy: one silent node does not pause evictions)
    assert reconcile_nodes([node], {"n1": excused}, {}, now, settings, False, 9) == []
    # The same silence with the loop free the whole time: NotReady.
    blamed = NodeSignals(last_seen=0.0)
    actions = reconcile_nodes([node], {"n1": blamed}, {}, now, settings, False, 9)
    assert [a.condition for a in actions if isinstance(a, SetNodeCondition)] == ["NotReady"]


def _setup() -> tuple[FakeClock, ClusterState, LeaseTable, ControllerManager]:
    clock = FakeClock()
    state = ClusterState(MemoryStore(), clock)
    leases = LeaseTable()
    manager = ControllerManager(state, clock, leases, lease_seconds=3.0)
    add_ready_node(state, leases, clock, "n1")
    manager.run_pass()
    return clock, state, leases, manager


def _ready(state: ClusterState) -> bool:
    node = state.get("Node", "n1")
    return isinstance(node, Node) and node.status.ready


def test_a_node_stays_ready_while_the_masters_loop_is_held_and_goes_not_ready_after() -> None:
    clock, state, _, manager = _setup()
    # 8 s in which the controller ticks on time (no stall), but the loop-lag probe wakes
    # 0.2 s late for every 0.05 s asked: the loop is held 80 % of the time and the node's
    # heartbeats wait behind the agents' reports.
    for _ in range(32):
        clock.advance(0.25)
        manager.loop_held.note(clock.monotonic(), 0.2)
        manager.tick()
    assert _ready(state), "blamed for 8 s of silence, 6.4 s of it the master's own"
    # The loop is free again and the node really silent: 1.6 s of its silence counted so
    # far, NotReady once 3 s are (1.4 s from now), not later.
    for _ in range(5):
        clock.advance(0.25)
        manager.tick()
    assert _ready(state)
    for _ in range(2):
        clock.advance(0.25)
        manager.tick()
    assert not _ready(state)
