"""The controller manager over real ClusterState + MemoryStore, with a fake clock.

No sockets, no sleeps: each `run_pass()` is one reconcile pass, the clock moves
only when told, so lease expiry and eviction are exact.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import replace

from kernel.clock import FakeClock
from master.controllers.manager import ControllerManager
from master.controllers.nodes import LeaseTable
from master.model import (
    Container,
    Deployment,
    Event,
    Node,
    ObjectMeta,
    PodSpec,
    PodTemplate,
    Resources,
)
from master.state import ClusterState
from master.store import MemoryStore
from tests.unit.ready_nodes import add_ready_node

GIB = 2**30


def _setup(lease: float = 3.0) -> tuple[FakeClock, ClusterState, LeaseTable, ControllerManager]:
    clock = FakeClock()
    state = ClusterState(MemoryStore(), clock)
    leases = LeaseTable()
    return clock, state, leases, ControllerManager(state, clock, leases, lease_seconds=lease)


def _deployment(replicas: int, memory: int = 0) -> Deployment:
    container = Container(name="web", image="nginx:latest", requests=Resources(0, memory))
    return Deployment(
        meta=ObjectMeta(name="web"),
        replicas=replicas,
        selector={"app": "web"},
        template=PodTemplate(labels={"app": "web"}, spec=PodSpec(containers=(container,))),
    )


def _reasons(state: ClusterState) -> list[str]:
    return [e.reason for e in state.objects("Event") if isinstance(e, Event)]


def test_a_deployment_is_created_scheduled_and_spread() -> None:
    clock, state, leases, manager = _setup()
    add_ready_node(state, leases, clock, "n1")
    add_ready_node(state, leases, clock, "n2")
    state.put(_deployment(replicas=4))

    manager.run_pass()

    pods = state.pods()
    assert len(pods) == 4
    assert Counter(p.node_name for p in pods) == {"n1": 2, "n2": 2}
    assert all(p.epoch > 0 for p in pods)
    assert _reasons(state).count("Scheduled") == 4


def test_a_silent_node_goes_not_ready_and_its_pods_are_replaced_elsewhere() -> None:
    clock, state, leases, manager = _setup(lease=3.0)
    add_ready_node(state, leases, clock, "n1")
    add_ready_node(state, leases, clock, "n2")
    state.put(_deployment(replicas=4))
    manager.run_pass()
    lost = {p.meta.name for p in state.pods_on_node("n2")}

    clock.advance(2.0)
    leases.renew("n1", clock.monotonic())
    clock.advance(2.0)  # n2 silent for 4 s > 3 s lease; n1 for 2 s
    manager.run_pass()

    node2 = state.get("Node", "n2")
    assert isinstance(node2, Node) and not node2.status.ready
    pods = state.pods()
    assert len(pods) == 4
    assert all(p.node_name == "n1" for p in pods)
    assert not lost & {p.meta.name for p in pods}
    assert "NodeNotReady" in _reasons(state) and "Rescheduled" in _reasons(state)


def test_a_pod_that_fits_nowhere_stays_pending_with_the_reason_until_capacity_appears() -> None:
    clock, state, leases, manager = _setup()
    add_ready_node(state, leases, clock, "small", memory=GIB)
    state.put(_deployment(replicas=1, memory=2 * GIB))

    manager.run_pass()

    (pod,) = state.pods()
    assert pod.node_name == ""
    assert pod.status.message == "0/1 nodes are available: 1 insufficient memory."
    assert "FailedScheduling" in _reasons(state)

    add_ready_node(state, leases, clock, "big", memory=8 * GIB)
    manager.run_pass()

    (pod,) = state.pods()
    assert pod.node_name == "big"


def test_master_restart_grace_keeps_nodes_ready_while_agents_reconnect() -> None:
    clock, state, leases, manager = _setup(lease=3.0)
    add_ready_node(state, leases, clock, "n1")
    state.put(_deployment(replicas=2))
    manager.run_pass()
    # A new master process: empty lease table, same stored objects.
    restarted = LeaseTable()
    manager2 = ControllerManager(state, clock, restarted, lease_seconds=3.0)
    manager2.start_grace()
    clock.advance(2.0)

    manager2.run_pass()

    node = state.get("Node", "n1")
    assert isinstance(node, Node) and node.status.ready
    assert len(state.pods_on_node("n1")) == 2


def test_scaling_down_asks_the_agent_to_stop_pods_gracefully() -> None:
    clock, state, leases, manager = _setup()
    add_ready_node(state, leases, clock, "n1")
    state.put(_deployment(replicas=3))
    manager.run_pass()
    dep = state.get("Deployment", "web")
    assert isinstance(dep, Deployment)

    state.put(replace(dep, replicas=1))
    manager.run_pass()

    stopping = [p for p in state.pods() if p.deletion_requested_at]
    assert len(stopping) == 2
    assert len(state.pods()) == 3  # still there until the agent reports them removed


def test_assignment_epochs_only_grow_across_a_master_restart() -> None:
    clock, state, leases, manager = _setup()
    add_ready_node(state, leases, clock, "n1")
    state.put(_deployment(replicas=2))
    manager.run_pass()
    first = {p.epoch for p in state.pods()}
    # A new master process over the same objects binds the next pods.
    manager2 = ControllerManager(state, clock, leases, lease_seconds=3.0)
    dep = state.get("Deployment", "web")
    assert isinstance(dep, Deployment)
    state.put(replace(dep, replicas=4))

    manager2.run_pass()

    later = {p.epoch for p in state.pods()} - first
    assert len(first) == 2 and len(later) == 2
    assert min(later) > max(first)


def test_the_events_a_pass_causes_per_pod_are_queued_and_read_as_written() -> None:
    """Created and Scheduled (two of the three events every pod causes) wait for the event
    writer instead of being written one by one on the pass (master/event_queue.py);
    anyone reading events sees them all the same."""
    clock, state, leases, manager = _setup()
    add_ready_node(state, leases, clock, "n1")
    state.put(_deployment(replicas=12))
    written: list[str] = []
    state.subscribe(
        lambda kind, obj, deleted, previous: written.append(kind) if kind == "Event" else None
    )

    manager.run_pass()

    assert written == []
    assert _reasons(state).count("Scheduled") == 12
    assert _reasons(state).count("SuccessfulCreate") == 10  # nine, then one counting three
