"""Node leases with a fake clock: Ready -> NotReady on silence, back on heartbeat."""

from __future__ import annotations

from kernel.clock import FakeClock
from master.controllers.nodes import (
    LeaseTable,
    apply_transition,
    reconcile_node_lease,
    should_evict,
)
from master.model import Node, NodeStatus, ObjectMeta, Resources


def _node(ready: bool) -> Node:
    return Node(
        meta=ObjectMeta(name="n1"),
        address="127.0.0.1",
        capacity=Resources(2000, 2**30),
        allocatable=Resources(2000, 2**30),
        status=NodeStatus(ready=ready),
    )


def test_silence_longer_than_the_lease_makes_a_node_not_ready() -> None:
    clock, leases = FakeClock(), LeaseTable()
    leases.renew("n1", clock.monotonic())
    node = _node(ready=True)

    clock.advance(2.9)
    assert reconcile_node_lease(node, leases.last_seen("n1"), clock.monotonic(), 3.0) is None
    clock.advance(0.2)
    t = reconcile_node_lease(node, leases.last_seen("n1"), clock.monotonic(), 3.0)

    assert t is not None and not t.ready and t.reason == "NodeNotReady"
    assert "no heartbeat for 3.1s" in t.message


def test_a_heartbeat_brings_a_not_ready_node_back() -> None:
    clock, leases = FakeClock(), LeaseTable()
    node = _node(ready=False)
    leases.renew("n1", clock.monotonic())

    t = reconcile_node_lease(node, leases.last_seen("n1"), clock.monotonic(), 3.0)

    assert t is not None and t.ready and t.reason == "NodeReady"


def test_a_node_never_heard_from_is_not_ready() -> None:
    t = reconcile_node_lease(_node(ready=True), None, 100.0, 3.0)

    assert t is not None and not t.ready


def test_eviction_waits_for_the_timeout_after_the_transition() -> None:
    clock = FakeClock()
    node = _node(ready=True)
    t = reconcile_node_lease(node, None, clock.monotonic(), 3.0)
    assert t is not None
    down = apply_transition(node, t, clock.now())

    assert should_evict(down, clock.now(), 0.0)
    assert not should_evict(down, clock.now(), 30.0)
    clock.advance(30.0)
    assert should_evict(down, clock.now(), 30.0)
    assert not should_evict(_node(ready=True), clock.now(), 0.0)
