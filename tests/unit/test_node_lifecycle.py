"""Node lifecycle on a fake clock: Ready, Unknown, NotReady, evictions and their pauses.

`reconcile_nodes` is pure: nodes, what the master knows about them (last
heartbeat, goodbye, probe) and their pods in, actions out. The controller
manager's part — a stalled loop grants fresh leases before judging — runs over
a real ClusterState with a fake clock.
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
    stalled,
    witness_members,
)
from master.controllers.manager import ControllerManager
from master.controllers.nodes import LeaseTable
from master.model import (
    NODE_NOT_READY,
    NODE_UNKNOWN,
    Container,
    Event,
    Node,
    NodeStatus,
    ObjectMeta,
    Pod,
    PodSpec,
    PodStatus,
    Resources,
)
from master.state import ClusterState
from master.store import MemoryStore

SETTINGS = NodeHealthSettings(lease_seconds=3.0, eviction_timeout=0.0, node_grace=60.0)
T0 = 1000.0


def _node(name: str, ready: bool = True, reason: str = "", session_lost: bool = False) -> Node:
    return Node(
        meta=ObjectMeta(name=name),
        address="127.0.0.1",
        capacity=Resources(2000, 2**30),
        allocatable=Resources(2000, 2**30),
        status=NodeStatus(
            ready=ready,
            reason=reason,
            last_transition=5.0,
            session_lost_at=7.0 if session_lost else 0.0,
        ),
    )


def _pod(name: str, node: str, ready: bool = True) -> Pod:
    return Pod(
        meta=ObjectMeta(name=name),
        spec=PodSpec(containers=(Container(name="web", image="pinnace/httpd:latest"),)),
        node_name=node,
        epoch=3,
        status=PodStatus(ready=ready),
    )


def _run(
    nodes: list[Node],
    silent: dict[str, float],
    *,
    goodbye: dict[str, float] | None = None,
    answering: dict[str, bool] | None = None,
    paused: bool = False,
    settings: NodeHealthSettings = SETTINGS,
    wall: float = 100.0,
) -> list[NodeAction]:
    """`silent` says for how long each node has not been heard from (seconds)."""
    now = Moment(wall=wall, mono=T0)
    signals = {
        n.meta.name: NodeSignals(
            last_seen=T0 - silent.get(n.meta.name, 0.5),
            goodbye_at=None
            if goodbye is None or n.meta.name not in goodbye
            else T0 - goodbye[n.meta.name],
            answering=(answering or {}).get(n.meta.name),
        )
        for n in nodes
    }
    pods = {n.meta.name: [_pod(f"{n.meta.name}-a", n.meta.name)] for n in nodes}
    return reconcile_nodes(nodes, signals, pods, now, settings, paused)


def _conditions(actions: list[NodeAction]) -> dict[str, str]:
    return {a.node: a.condition for a in actions if isinstance(a, SetNodeCondition)}


def _evicted(actions: list[NodeAction]) -> set[str]:
    return {a.pod for a in actions if isinstance(a, EvictPod)}


def test_silence_within_the_lease_changes_nothing_and_beyond_it_evicts() -> None:
    nodes = [_node("n1"), _node("n2")]

    assert _run(nodes, {"n1": 2.9}) == []
    actions = _run(nodes, {"n1": 3.1})

    assert _conditions(actions) == {"n1": "NotReady"}
    (set_,) = [a for a in actions if isinstance(a, SetNodeCondition)]
    assert "no heartbeat for 3.1s (lease 3s)" in set_.message
    assert MarkPodNotReady("n1-a") in actions and _evicted(actions) == {"n1-a"}


def test_a_heartbeat_brings_a_not_ready_node_back_and_never_heard_from_is_not_ready() -> None:
    back = _run([_node("n1", ready=False, reason=NODE_NOT_READY), _node("n2")], {})
    assert _conditions(back) == {"n1": "Ready"}

    now = Moment(100.0, T0)
    never = reconcile_nodes([_node("n1"), _node("n2")], {}, {}, now, SETTINGS, False)
    assert "no heartbeat since the master started" in str(never)


def test_eviction_waits_for_the_timeout_after_the_transition() -> None:
    settings = replace(SETTINGS, eviction_timeout=30.0)
    down = _node("n1", ready=False, reason=NODE_NOT_READY)  # NotReady since t=5
    nodes = [down, _node("n2"), _node("n3")]

    assert _evicted(_run(nodes, {"n1": 9.0}, settings=settings, wall=34.0)) == set()
    assert _evicted(_run(nodes, {"n1": 9.0}, settings=settings, wall=35.0)) == {"n1-a"}
    fresh = _run([_node("n1"), _node("n2"), _node("n3")], {"n1": 4.0}, settings=settings)
    assert _conditions(fresh) == {"n1": "NotReady"} and _evicted(fresh) == set()


def test_an_agent_that_said_goodbye_keeps_its_pods_for_the_grace() -> None:
    nodes = [_node("n1"), _node("n2")]

    during = _run(nodes, {"n1": 30.0}, goodbye={"n1": 29.0})
    after = _run(nodes, {"n1": 62.0}, goodbye={"n1": 61.0})

    assert _conditions(during) == {"n1": "Unknown"} and _evicted(during) == set()
    assert not any(isinstance(a, MarkPodNotReady) for a in during)
    assert "its agent is restarting" in str(during)
    assert _conditions(after) == {"n1": "NotReady"} and _evicted(after) == {"n1-a"}


def test_a_goodbye_whose_pods_stop_answering_is_not_ready_at_once() -> None:
    nodes = [_node("n1"), _node("n2")]

    actions = _run(nodes, {"n1": 5.0}, goodbye={"n1": 4.0}, answering={"n1": False})

    assert _conditions(actions) == {"n1": "NotReady"} and _evicted(actions) == {"n1-a"}
    assert "its pods stopped answering" in str(actions)


def test_an_agent_gone_while_its_pods_answer_is_unknown_until_they_stop_or_the_grace_ends() -> None:
    gone = [_node("n1", session_lost=True), _node("n2")]

    answering = _run(gone, {"n1": 10.0}, answering={"n1": True})
    silent_pods = _run(gone, {"n1": 10.0}, answering={"n1": False})
    not_probed = _run(gone, {"n1": 10.0})
    too_long = _run(gone, {"n1": 63.5}, answering={"n1": True})

    assert _conditions(answering) == {"n1": "Unknown"} and _evicted(answering) == set()
    assert "its pods still answer" in str(answering)
    for actions in (silent_pods, not_probed, too_long):
        assert _conditions(actions) == {"n1": "NotReady"} and _evicted(actions) == {"n1-a"}


def test_a_frozen_agent_with_its_session_open_is_not_ready_even_if_its_pods_answer() -> None:
    # SIGSTOP or a dropped link: the partition case, fenced and replaced at once.
    actions = _run([_node("n1"), _node("n2")], {"n1": 3.5}, answering={"n1": True})

    assert _conditions(actions) == {"n1": "NotReady"} and _evicted(actions) == {"n1-a"}


def test_an_unknown_node_heard_again_is_ready() -> None:
    actions = _run([_node("n1", ready=False, reason=NODE_UNKNOWN), _node("n2")], {})

    assert _conditions(actions) == {"n1": "Ready"}


def test_more_than_half_silent_at_once_pauses_evictions_with_one_event() -> None:
    nodes = [_node("n1"), _node("n2"), _node("n3")]

    first = _run(nodes, {"n1": 4.0, "n2": 4.0})
    again = _run(nodes, {"n1": 9.0, "n2": 9.0}, paused=True)
    resumed = _run(nodes, {}, paused=True)

    (pause,) = [a for a in first if isinstance(a, SetEvictionsPaused)]
    assert pause.paused and "2 of 3 nodes went silent at once" in pause.message
    assert _conditions(first) == {"n1": "Unknown", "n2": "Unknown"}
    assert _evicted(first) == set() and not any(isinstance(a, MarkPodNotReady) for a in first)
    assert not any(isinstance(a, SetEvictionsPaused) for a in again)
    assert [a.paused for a in resumed if isinstance(a, SetEvictionsPaused)] == [False]


def test_half_silent_is_not_more_than_half_and_the_threshold_is_settable() -> None:
    nodes = [_node(f"n{i}") for i in range(4)]
    silent = {"n0": 4.0, "n1": 4.0}

    assert _evicted(_run(nodes, silent)) == {"n0-a", "n1-a"}
    strict = replace(SETTINGS, unhealthy_threshold=0.25)
    assert _evicted(_run(nodes, silent, settings=strict)) == set()
    lone = _run([_node("n0")], {"n0": 4.0})
    assert _evicted(lone) == set() and _conditions(lone) == {"n0": "Unknown"}


def test_nodes_long_dead_and_emptied_do_not_count_towards_a_pause() -> None:
    dead = [_node(f"d{i}", ready=False, reason=NODE_NOT_READY) for i in range(3)]
    nodes = [*dead, _node("n1"), _node("n2")]
    now = Moment(100.0, T0)
    signals = {n.meta.name: NodeSignals(last_seen=T0 - 500.0) for n in dead}
    signals |= {"n1": NodeSignals(last_seen=T0 - 4.0), "n2": NodeSignals(last_seen=T0)}
    pods = {"n1": [_pod("n1-a", "n1")], "n2": [_pod("n2-a", "n2")]}

    actions = reconcile_nodes(nodes, signals, pods, now, SETTINGS, False)

    assert _evicted(actions) == {"n1-a"}
    assert not any(isinstance(a, SetEvictionsPaused) for a in actions)


def test_a_loop_that_did_not_run_for_half_a_lease_was_stalled() -> None:
    assert not stalled(10.0, 11.4, SETTINGS)
    assert stalled(10.0, 11.5, SETTINGS)


def _manager() -> tuple[FakeClock, ClusterState, LeaseTable, ControllerManager]:
    clock = FakeClock()
    state = ClusterState(MemoryStore(), clock)
    leases = LeaseTable()
    for name in ("n1", "n2"):
        state.put(replace(_node(name), status=NodeStatus(ready=True)))
        state.put(_pod(f"{name}-a", name))
        leases.renew(name, clock.monotonic())
    return clock, state, leases, ControllerManager(state, clock, leases, lease_seconds=3.0)


def _events(state: ClusterState, reason: str) -> list[Event]:
    return [e for e in state.objects("Event") if isinstance(e, Event) and e.reason == reason]


def test_a_stalled_master_gives_every_node_a_fresh_lease_before_judging() -> None:
    clock, state, _, manager = _manager()
    manager.tick()

    clock.advance(6.0)  # SIGSTOP: no tick and no heartbeat read for 6 s
    manager.tick()
    clock.advance(0.25)
    manager.tick()

    assert all(isinstance(n, Node) and n.status.ready for n in state.objects("Node"))
    assert len(state.pods()) == 2
    (event,) = _events(state, "MasterStalled")
    assert "did not run for 6.0s" in event.message


def test_a_running_master_still_sees_a_silent_node() -> None:
    clock, state, leases, manager = _manager()
    for _ in range(16):  # 4 s of ticks; only n2 heartbeats
        manager.tick()
        clock.advance(0.25)
        leases.renew("n2", clock.monotonic())
    manager.tick()

    node = state.get("Node", "n1")
    assert isinstance(node, Node) and not node.status.ready
    assert [p.meta.name for p in state.pods()] == ["n2-a"]
    assert _events(state, "MasterStalled") == []


def test_after_a_master_restart_agents_have_the_reconnect_grace_not_just_a_lease() -> None:
    clock, state, _, manager = _manager()
    restarted = LeaseTable()  # a new master process: nothing heard yet
    manager = ControllerManager(state, clock, restarted, lease_seconds=3.0)
    manager.start_grace()

    clock.advance(9.0)  # an agent in its reconnect backoff
    manager.run_pass()
    assert all(isinstance(n, Node) and n.status.ready for n in state.objects("Node"))
    restarted.renew("n2", clock.monotonic())
    clock.advance(1.5)
    manager.run_pass()

    node = state.get("Node", "n1")
    assert isinstance(node, Node) and not node.status.ready
    assert "not heard from within 10s of the master's (re)start" in node.status.message
    assert [p.meta.name for p in state.pods()] == ["n2-a"]


def test_a_node_is_judged_by_the_lease_it_was_given() -> None:
    # Registered into a large cluster: 2 s heartbeats, a 4 s lease (heartbeat_plan).
    nodes = [_node("big"), _node("small")]
    signals = {
        "big": NodeSignals(last_seen=T0 - 3.5, lease_seconds=4.0),
        "small": NodeSignals(last_seen=T0 - 3.5),
    }

    actions = reconcile_nodes(nodes, signals, {}, Moment(T0, T0), SETTINGS, paused=False)

    assert [a.node for a in actions if isinstance(a, SetNodeCondition)] == ["small"]
    late = {
        "big": NodeSignals(last_seen=T0 - 4.5, lease_seconds=4.0),
        "small": NodeSignals(last_seen=T0),
        "other": NodeSignals(last_seen=T0),
    }
    three = [*nodes, _node("other")]
    (action,) = reconcile_nodes(three, late, {}, Moment(T0, T0), SETTINGS, paused=False)
    assert isinstance(action, SetNodeCondition) and action.node == "big"
    assert action.condition == "NotReady"
    assert "lease 4s" in action.message


def test_witness_members_leave_out_dead_nodes_only() -> None:
    nodes = [
        _node("ready"),
        _node("unknown", ready=False, reason=NODE_UNKNOWN),
        _node("dead", ready=False, reason=NODE_NOT_READY),
        _node("silent-with-pods", ready=False, reason=NODE_NOT_READY),
    ]

    members = witness_members(nodes, lambda name: name == "silent-with-pods")

    assert [n.meta.name for n in members] == ["ready", "unknown", "silent-with-pods"]
