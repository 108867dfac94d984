"""Liveness from the session stream, on a fake clock (master/controllers/lifecycle.py).

A node's stream ends when its agent dies (its socket closes) or when the master's
keepalive pings go unanswered (a cut link, a frozen agent); the node is NotReady
`session_grace` after that unless its agent registered again, however long the
(stretched) lease is. Its pods leave the load balancer then, and are replaced only
once the lease has run out too (a cut-off agent fences itself within its lease). An
agent whose Python hangs while its gRPC core answers pings keeps its stream: its
lease still catches it.
"""

from __future__ import annotations

from dataclasses import replace

from kernel.clock import FakeClock
from master.controllers.lifecycle import (
    EvictPod,
    MarkPodNotReady,
    Moment,
    NodeAction,
    NodeHealthSettings,
    NodeSignals,
    SetEvictionsPaused,
    SetNodeCondition,
    reconcile_nodes,
)
from master.controllers.manager import ControllerManager
from master.controllers.nodes import LeaseTable
from master.model import Container, Node, NodeStatus, ObjectMeta, Pod, PodSpec, PodStatus, Resources
from master.state import ClusterState
from master.store import MemoryStore

SETTINGS = NodeHealthSettings(lease_seconds=3.0, session_grace=2.0)
# A node of a 5,000-node cluster: 10 s heartbeats, a 12 s lease (heartbeat_plan at 500/s).
BIG_LEASE = 12.0
T0 = 1000.0


def _node(name: str) -> Node:
    return Node(
        meta=ObjectMeta(name=name),
        address="127.0.0.1",
        capacity=Resources(2000, 2**30),
        allocatable=Resources(2000, 2**30),
        status=NodeStatus(ready=True),
    )


def _pod(name: str, node: str) -> Pod:
    return Pod(
        meta=ObjectMeta(name=name),
        spec=PodSpec(containers=(Container(name="web", image="pinnace/httpd:latest"),)),
        node_name=node,
        epoch=1,
        status=PodStatus(ready=True),
    )


def _judge(signals: NodeSignals, at: float = T0) -> list[NodeAction]:
    node = _node("n1")
    pods = {"n1": [_pod("web", "n1")]}
    return reconcile_nodes([node, _node("n2")], {"n1": signals, "n2": NodeSignals(at)}, pods,
                           Moment(at, at), SETTINGS, paused=False)  # fmt: skip


def test_an_ended_stream_is_given_the_grace_to_reconnect() -> None:
    signals = NodeSignals(last_seen=T0 - 1.0, lease_seconds=BIG_LEASE, session_ended_at=T0 - 2.0)

    assert _judge(signals) == []


def test_past_the_grace_the_node_is_not_ready_though_its_lease_runs() -> None:
    signals = NodeSignals(last_seen=T0 - 5.0, lease_seconds=BIG_LEASE, session_ended_at=T0 - 2.1)

    actions = _judge(signals)

    (condition,) = [a for a in actions if isinstance(a, SetNodeCondition)]
    assert condition.condition == "NotReady"
    assert "session ended 2.1s ago" in condition.message
    # Its pods leave the load balancer, but a cut-off agent has not fenced yet (its
    # lease runs for 7 s more): nothing is replaced.
    assert [a for a in actions if isinstance(a, MarkPodNotReady)] != []
    assert [a for a in actions if isinstance(a, EvictPod)] == []


def test_once_the_lease_has_run_out_too_the_pods_are_replaced() -> None:
    signals = NodeSignals(last_seen=T0 - 12.5, lease_seconds=BIG_LEASE, session_ended_at=T0 - 9.0)

    actions = _judge(signals)

    assert [a.pod for a in actions if isinstance(a, EvictPod)] == ["web"]


def test_a_hung_agent_with_its_stream_open_is_caught_by_its_lease() -> None:
    within = NodeSignals(last_seen=T0 - 11.9, lease_seconds=BIG_LEASE)
    beyond = NodeSignals(last_seen=T0 - 12.1, lease_seconds=BIG_LEASE)

    assert _judge(within) == []
    (condition,) = [a for a in _judge(beyond) if isinstance(a, SetNodeCondition)]
    assert condition.condition == "NotReady" and "no heartbeat for 12.1s" in condition.message


def test_an_agent_that_said_goodbye_and_closed_its_stream_is_unknown() -> None:
    signals = NodeSignals(
        last_seen=T0 - 3.0, lease_seconds=BIG_LEASE, session_ended_at=T0 - 3.0, goodbye_at=T0 - 3.0
    )

    (condition,) = [a for a in _judge(signals) if isinstance(a, SetNodeCondition)]

    assert condition.condition == "Unknown"


def _manager() -> tuple[FakeClock, ClusterState, LeaseTable, ControllerManager]:
    clock = FakeClock()
    state = ClusterState(MemoryStore(), clock)
    leases = LeaseTable()
    for name in ("n1", "n2", "n3"):
        state.put(replace(_node(name), status=NodeStatus(ready=True)))
        state.put(_pod(f"{name}-a", name))
        leases.renew(name, clock.monotonic())
        leases.set_lease(name, BIG_LEASE)
    return clock, state, leases, ControllerManager(state, clock, leases, lease_seconds=3.0)


def _ready(state: ClusterState, name: str) -> bool:
    node = state.get("Node", name)
    return isinstance(node, Node) and node.status.ready


def _ticks(clock: FakeClock, manager: ControllerManager, seconds: float) -> None:
    for _ in range(round(seconds / 0.25)):
        clock.advance(0.25)
        manager.tick()


def test_a_killed_agent_is_not_ready_within_the_grace_and_a_pass() -> None:
    clock, state, leases, manager = _manager()
    _ticks(clock, manager, 1.0)

    leases.session_ended("n1", clock.monotonic())  # its socket closed
    _ticks(clock, manager, NodeHealthSettings().session_grace)
    assert _ready(state, "n1")
    _ticks(clock, manager, 0.25)

    assert not _ready(state, "n1")
    assert _ready(state, "n2") and _ready(state, "n3")


def test_an_agent_that_registers_again_within_the_grace_stays_ready() -> None:
    clock, state, leases, manager = _manager()
    leases.session_ended("n1", clock.monotonic())
    _ticks(clock, manager, 1.0)

    leases.renew("n1", clock.monotonic())
    leases.session_started("n1")
    _ticks(clock, manager, 5.0)

    assert _ready(state, "n1")


def test_a_stalled_master_forgives_streams_that_ended_meanwhile() -> None:
    clock, state, leases, manager = _manager()
    manager.tick()
    leases.session_ended("n1", clock.monotonic())

    clock.advance(6.0)  # the master's loop did not run
    manager.tick()
    _ticks(clock, manager, 1.0)

    assert _ready(state, "n1")  # given the reconnect grace, as every node
    assert leases.ended_at("n1") is None


def test_nodes_left_out_as_healthy_count_towards_the_pause() -> None:
    silent = [_node(f"s{i}") for i in range(3)]
    signals = {n.meta.name: NodeSignals(last_seen=T0 - 60.0) for n in silent}
    pods = {n.meta.name: [_pod(f"{n.meta.name}-a", n.meta.name)] for n in silent}
    now = Moment(T0, T0)

    few = reconcile_nodes(silent, signals, pods, now, SETTINGS, paused=False, healthy=10)
    many = reconcile_nodes(silent, signals, pods, now, SETTINGS, paused=False, healthy=2)

    assert [a for a in few if isinstance(a, SetEvictionsPaused)] == []
    assert len([a for a in few if isinstance(a, EvictPod)]) == 3
    (pause,) = [a for a in many if isinstance(a, SetEvictionsPaused)]
    assert pause.paused and "3 of 5 nodes" in pause.message
    assert [a for a in many if isinstance(a, EvictPod)] == []


def test_a_stream_ending_as_a_stalled_master_wakes_is_judged_by_the_grant() -> None:
    clock, state, leases, manager = _manager()
    manager.tick()

    clock.advance(6.0)  # stalled; on waking its keepalive pings time out first...
    manager.tick()  # ...or after the pass that grants every node the reconnect grace
    leases.session_ended("n1", clock.monotonic())
    _ticks(clock, manager, 5.0)

    assert _ready(state, "n1")
    assert leases.ended_at("n1") is None


def test_a_dead_link_is_judged_by_the_kernel_in_2_5_s_and_a_frozen_agent_by_grpc_in_1_5() -> None:
    from master.server import session_keepalive

    default, stretched = dict(session_keepalive()), dict(session_keepalive(4.0))

    assert default["grpc.keepalive_time_ms"] == 2000
    assert stretched["grpc.keepalive_time_ms"] == 4000
    assert stretched["grpc.keepalive_timeout_ms"] == 2500  # TCP_USER_TIMEOUT
    assert stretched["grpc.http2.ping_timeout_ms"] == 1500  # the agent's ping ack


def test_a_frozen_agent_of_a_5000_node_cluster_is_not_ready_within_5_s() -> None:
    """SIGSTOP: its kernel still acknowledges TCP, so only the unanswered ping ends its
    stream; its 22 s lease (heartbeat_plan at 5,000 nodes) would take far longer."""
    from master.controllers.heartbeats import heartbeat_plan
    from master.server import session_keepalive

    clock, state, leases, manager = _manager()
    plan = heartbeat_plan(5000, 1.0, 3.0)
    for name in ("n1", "n2", "n3"):
        leases.set_lease(name, plan.lease)
    _ticks(clock, manager, 1.0)
    leases.renew("n1", clock.monotonic())  # its last heartbeat, and a ping just answered
    frozen_at = clock.monotonic()

    options = dict(session_keepalive())
    # The next ping goes out one keepalive period on; gRPC ends the stream when its answer
    # is overdue.
    ends = (options["grpc.keepalive_time_ms"] + options["grpc.http2.ping_timeout_ms"]) / 1000
    detected = None
    while clock.monotonic() - frozen_at < 30.0 and detected is None:
        _ticks(clock, manager, 0.25)
        if leases.ended_at("n1") is None and clock.monotonic() - frozen_at >= ends:
            leases.session_ended("n1", clock.monotonic())
        if not _ready(state, "n1"):
            detected = clock.monotonic() - frozen_at

    assert plan.lease > 20.0
    assert detected is not None and detected <= 5.0
    assert _ready(state, "n2") and _ready(state, "n3")
