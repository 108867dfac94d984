"""The node lifecycle does not blame nodes for the master's own read backlog (fake clock).

Pure first (reconcile_nodes with a backlog in the signals), then the controller manager
over a real ClusterState, fed the way the node servicer feeds it: each heartbeat renews the
node's lease and is noted with its send time (master/controllers/read_backlog.py) when the
master reads it, late, as a busy master read a 5,000-node fleet's beats in a big apply.
"""

from __future__ import annotations

from kernel.clock import FakeClock
from master.controllers.lifecycle import (
    EvictPod,
    Moment,
    NodeHealthSettings,
    NodeSignals,
    SetNodeCondition,
    reconcile_nodes,
)
from master.controllers.manager import ControllerManager
from master.controllers.nodes import LeaseTable
from master.model import Container, Node, NodeStatus, ObjectMeta, Pod, PodSpec, Resources
from master.state import ClusterState
from master.store import MemoryStore
from tests.unit.ready_nodes import add_ready_node

SETTINGS = NodeHealthSettings(lease_seconds=22.0)
ROOM = Resources(2000, 2**30)
NOW = Moment(wall=1_700_000_000.0, mono=1000.0)


def _node(name: str) -> Node:
    return Node(ObjectMeta(name=name), "127.0.0.1", ROOM, ROOM, status=NodeStatus(ready=True))


def _pod(name: str, node: str) -> Pod:
    spec = PodSpec(containers=(Container(name="web", image="pinnace/httpd:latest"),))
    return Pod(meta=ObjectMeta(name=name), spec=spec, node_name=node, epoch=1)


def _judge(signals: NodeSignals) -> list[object]:
    # (nine other nodes healthy: one silent node does not pause evictions)
    pods = {"n1": [_pod("p1", "n1")]}
    return list(reconcile_nodes([_node("n1")], {"n1": signals}, pods, NOW, SETTINGS, False, 9))


def _conditions(actions: list[object]) -> list[str]:
    return [a.condition for a in actions if isinstance(a, SetNodeCondition)]


def test_silence_within_lease_plus_backlog_is_excused_and_beyond_it_is_not() -> None:
    # Silent 72 s with the master reading the fleet's beats 60 s late: 12 s are the node's.
    assert _judge(NodeSignals(last_seen=NOW.mono - 72.0, backlog=60.0)) == []
    # The false negative is bounded: a node really dead during the backlog is NotReady
    # (and its pods go) once it was silent for its lease plus the backlog.
    late = _judge(NodeSignals(last_seen=NOW.mono - 82.5, backlog=60.0))
    assert _conditions(late) == ["NotReady"]
    assert any(isinstance(a, EvictPod) for a in late)
    assert "reads the fleet's heartbeats 60.0s late" in str(late[0])


def test_a_stream_that_ended_is_not_excused_by_the_backlog() -> None:
    # A killed agent: its stream ended 5 s ago, its lease ran out; the backlog changes
    # nothing, its pods are replaced as fast as without it.
    actions = _judge(
        NodeSignals(last_seen=NOW.mono - 23.0, session_ended_at=NOW.mono - 5.0, backlog=60.0)
    )
    assert _conditions(actions) == ["NotReady"]
    assert any(isinstance(a, EvictPod) for a in actions)


def test_the_larger_of_held_and_backlog_is_excused_not_their_sum() -> None:
    assert _judge(NodeSignals(last_seen=NOW.mono - 60.0, held=30.0, backlog=20.0)) != []
    assert _judge(NodeSignals(last_seen=NOW.mono - 50.0, held=30.0, backlog=20.0)) == []


# -- the manager, fed as the servicer feeds it --------------------------------------------

LEASE = 3.0
NODES = 40
STEP = 0.25


def _delay(sent: float, i: int) -> float:
    """How late the master reads a beat sent at `sent` (seconds from the start) on node i's
    stream: on time, then a backlog that grows 3 s a second (the reading nearly stops), holds
    at 15 s, and drains; each stream a little slower than the one before (up to 1.4x)."""
    if sent < 5.0:
        base = 0.0
    elif sent < 10.0:
        base = 3.0 * (sent - 5.0)
    elif sent < 30.0:
        base = 15.0
    else:
        base = max(0.0, 15.0 - 0.6 * (sent - 30.0))
    return base * (1.0 + 0.4 * i / NODES)


def _simulate(stamped: bool, dead_after: float | None = None) -> tuple[set[str], float | None]:
    """60 s of a fleet beating every second, read late as `_delay` says; which nodes ever
    went NotReady, and when (seconds from the start) the dead node (n0, stops beating at
    `dead_after`, its stream open) was evicted."""
    clock = FakeClock()
    wall0, mono0 = clock.now(), clock.monotonic()
    state = ClusterState(MemoryStore(), clock)
    leases = LeaseTable()
    manager = ControllerManager(state, clock, leases, lease_seconds=LEASE)
    for i in range(NODES):
        add_ready_node(state, leases, clock, f"n{i}")
    state.put(_pod("p0", "n0"))
    manager.run_pass()
    # Every beat: (read at, node, sent at), seconds from the start.
    beats = sorted(
        (s + i / NODES + _delay(s + i / NODES, i), i, s + i / NODES)
        for i in range(NODES)
        for s in range(60)
        if not (i == 0 and dead_after is not None and s + i / NODES > dead_after)
    )
    went_not_ready: set[str] = set()
    evicted_at = None
    t = 0.0
    while t < 60.0:
        t += STEP
        clock.advance(STEP)
        while beats and beats[0][0] <= t:
            _, i, sent = beats.pop(0)
            leases.renew(f"n{i}", clock.monotonic())
            sent_wall = wall0 + sent if stamped else 0.0
            manager.read_backlog.observe(f"n{i}", sent_wall, clock.now(), clock.monotonic())
        manager.tick()
        for n in state.objects("Node"):
            if isinstance(n, Node) and not n.status.ready:
                went_not_ready.add(n.meta.name)
        if evicted_at is None and state.pod("p0") is None:
            evicted_at = clock.monotonic() - mono0
    return went_not_ready, evicted_at


def test_a_fleet_read_late_stays_ready_when_its_beats_say_when_they_were_sent() -> None:
    assert _simulate(stamped=True) == (set(), None)


def test_without_the_send_times_the_same_fleet_is_blamed_for_the_masters_backlog() -> None:
    # What the master did before: the loop free (no loop lag noted), the reads late.
    blamed, evicted_at = _simulate(stamped=False)
    assert len(blamed) > NODES // 2
    assert evicted_at is not None


def test_a_node_dead_during_the_backlog_is_still_found_within_lease_plus_backlog() -> None:
    # n0 (the fastest stream) stops beating at 8 s, its stream open (a hung agent): its last
    # beat, sent at 8 s, is read at 17 s; the backlog then is 15-21 s and holds to 30 s.
    blamed, evicted_at = _simulate(stamped=True, dead_after=8.0)
    assert blamed == {"n0"}
    assert evicted_at is not None
    # Found no later than its last read + lease + the largest backlog (21 s) + a pass.
    assert evicted_at <= 17.0 + LEASE + 21.0 + 2 * STEP
