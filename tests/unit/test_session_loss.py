"""Mass session loss on a fake clock (master/controllers/session_loss.py): a few sessions
ending are nodes dying, judged one by one; many ending within seconds are the master's
(or the network's) problem: every node gets a fresh lease and the ends are excused, so a
reconnect storm neither marks live nodes NotReady nor writes a node and an event each."""

from __future__ import annotations

from kernel.clock import FakeClock
from master.controllers.manager import ControllerManager
from master.controllers.nodes import LeaseTable
from master.controllers.session_loss import (
    Counted,
    Excused,
    Opened,
    SessionLossSettings,
    SessionLossValve,
    threshold,
)
from master.model import Node, NodeStatus, ObjectMeta, Resources
from master.state import ClusterState
from master.store import MemoryStore

SETTINGS = SessionLossSettings(window=5.0, fraction=0.05, minimum=20)


def test_the_threshold_is_a_fraction_of_the_nodes_but_never_below_the_minimum() -> None:
    assert threshold(3, SETTINGS) == 20
    assert threshold(1000, SETTINGS) == 50
    assert threshold(5000, SETTINGS) == 250


def test_a_few_sessions_ending_are_each_counted() -> None:
    valve = SessionLossValve(SETTINGS)

    verdicts = [valve.session_ended(100.0 + i * 0.01, 1000) for i in range(50)]

    assert verdicts == [Counted()] * 50
    assert not valve.open


def test_many_ending_within_the_window_open_the_valve_once_and_excuse_the_rest() -> None:
    valve = SessionLossValve(SETTINGS)
    for i in range(50):
        valve.session_ended(100.0 + i * 0.01, 1000)

    opened = valve.session_ended(101.0, 1000)
    later = valve.session_ended(101.5, 1000)

    assert isinstance(opened, Opened)
    assert opened.ended == 51 and opened.nodes == 1000
    assert "51 of 1000 nodes' sessions ended within 5s" in opened.message
    assert later == Excused()
    assert valve.open


def test_ends_spread_beyond_the_window_never_open_it() -> None:
    valve = SessionLossValve(SETTINGS)

    verdicts = {type(valve.session_ended(i * 0.2, 1000)) for i in range(500)}  # 5 a second

    assert verdicts == {Counted}


def test_the_valve_closes_once_the_ends_within_the_window_fall_to_half_the_threshold() -> None:
    valve = SessionLossValve(SETTINGS)
    for i in range(60):
        valve.session_ended(100.0 + i * 0.01, 1000)
    assert valve.open

    assert valve.check(104.0, 1000) is None  # still 60 within the window
    closed = valve.check(105.7, 1000)

    assert closed is not None and "sessions ended within 5s" in closed.message
    assert not valve.open
    assert valve.session_ended(106.0, 1000) == Counted()


def _manager(nodes: int) -> tuple[FakeClock, ClusterState, LeaseTable, ControllerManager]:
    clock = FakeClock()
    state = ClusterState(MemoryStore(), clock)
    leases = LeaseTable()
    for i in range(nodes):
        name = f"n{i:03d}"
        state.put(
            Node(
                meta=ObjectMeta(name=name),
                address="127.0.0.1",
                capacity=Resources(2000, 2**30),
                allocatable=Resources(2000, 2**30),
                status=NodeStatus(ready=True),
            )
        )
        leases.renew(name, clock.monotonic())
        leases.set_lease(name, 12.0)
    manager = ControllerManager(
        state, clock, leases, lease_seconds=3.0, session_loss=SessionLossSettings(minimum=5)
    )
    return clock, state, leases, manager


def _ticks(clock: FakeClock, manager: ControllerManager, seconds: float) -> None:
    for _ in range(round(seconds / 0.25)):
        clock.advance(0.25)
        manager.tick()


def _ready(state: ClusterState) -> int:
    return sum(1 for n in state.objects("Node") if isinstance(n, Node) and n.status.ready)


def test_a_reconnect_storm_leaves_live_nodes_ready_and_their_ends_unrecorded() -> None:
    clock, state, leases, manager = _manager(100)
    manager.tick()

    counted = [manager.session_ended(f"n{i:03d}") for i in range(40)]
    _ticks(clock, manager, 3.0)  # past the session grace: no agent is back yet

    assert counted == [True] * 5 + [False] * 35  # the sixth end opened the valve
    assert _ready(state) == 100
    assert all(leases.ended_at(f"n{i:03d}") is None for i in range(40))
    reasons = [getattr(e, "reason", "") for e in state.objects("Event")]
    assert reasons.count("MassSessionLoss") == 1


def test_a_node_that_never_comes_back_after_a_storm_is_still_found_by_its_lease() -> None:
    clock, state, leases, manager = _manager(100)
    manager.tick()
    for i in range(40):
        manager.session_ended(f"n{i:03d}")
    # Every agent but n000's registers again and heartbeats on. n000 has the grant's
    # reconnect grace (10 s) and its own lease's stretch beyond the base lease (9 s).
    for _ in range(round(20 / 0.25)):
        clock.advance(0.25)
        for i in range(1, 100):
            leases.renew(f"n{i:03d}", clock.monotonic())
        manager.tick()

    node = state.get("Node", "n000")
    assert isinstance(node, Node) and not node.status.ready
    assert _ready(state) == 99
    reasons = [getattr(e, "reason", "") for e in state.objects("Event")]
    assert "MassSessionLossOver" in reasons


def test_a_few_nodes_dying_together_are_each_not_ready_after_the_grace() -> None:
    clock, state, _leases, manager = _manager(100)
    manager.tick()

    counted = [manager.session_ended(f"n{i:03d}") for i in range(3)]
    _ticks(clock, manager, 1.5)

    assert counted == [True] * 3
    assert _ready(state) == 97
