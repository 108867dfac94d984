"""The controller pass in steps (master/controllers/slicing.py): the loop gets a turn
between controllers and within the scheduler's placements and the deployments' pod
creations, and what changed meanwhile is respected.

At 1,000 nodes one pass placing 2,000 pods held the master's loop for 350-500 ms in
one piece; now no step runs much past `STEP_SECONDS` of CPU (the bench:
`python -m tests.bench.hollow --stalls 20`).
"""

from __future__ import annotations

import itertools
from dataclasses import replace

import pytest

import master.controllers.deployment as deployment_module
import master.controllers.manager as manager_module
import master.controllers.naming as naming
from kernel.clock import FakeClock
from master.controllers.manager import ControllerManager
from master.controllers.nodes import LeaseTable
from master.controllers.slicing import step_over
from master.model import (
    Node,
    Pod,
)
from master.state import ClusterState
from master.store import MemoryStore
from tests.unit.ready_nodes import add_ready_nodes, web_deployment

GIB = 2**30


def test_a_step_has_had_its_turn_once_it_used_its_budget() -> None:
    assert not step_over(1.0, 1.019, 0.02)
    assert step_over(1.0, 1.02, 0.02)


def _cluster(nodes: int) -> tuple[FakeClock, ClusterState, LeaseTable, ControllerManager]:
    clock = FakeClock()
    state = ClusterState(MemoryStore(), clock)
    leases = LeaseTable()
    manager = ControllerManager(state, clock, leases)
    add_ready_nodes(state, leases, clock, nodes)
    return clock, state, leases, manager


def test_the_pass_yields_within_the_scheduler_and_respects_what_changed_meanwhile(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    _, state, _, manager = _cluster(4)
    manager.run_pass()
    # Every creation and every decision is a step of its own (a budget used up at once).
    monkeypatch.setattr(manager_module, "step_over", lambda started, now: True)
    state.put(web_deployment(12))
    steps = manager._tick_steps()
    seen = 0
    doomed = ""
    while next(steps, None) is not None:
        bound = [p for p in state.pods() if p.node_name]
        seen += len(state.pods()) == 12 and len(bound) < 12
        if len(bound) == 3 and not doomed:
            # Meanwhile (the loop ran other work): a pending pod is deleted, a node goes.
            doomed = next(p.meta.name for p in state.pods() if not p.node_name)
            state.remove("Pod", doomed)
            node = state.get("Node", "n3")
            assert isinstance(node, Node)
            state.put(replace(node, status=replace(node.status, ready=False)))
    assert seen >= 4  # the loop had a turn between placements
    pods = state.pods()
    assert doomed and state.pod(doomed) is None
    placed_after = [p for p in pods if p.node_name == "n3" and p.epoch > 3]
    assert placed_after == []  # nothing placed on n3 once it was no longer Ready
    assert len([p for p in pods if p.node_name]) >= 8
    manager.run_pass()  # the next pass places what this one left
    assert all(p.node_name for p in state.pods() if p.meta.name != doomed)


def test_the_deployment_controller_yields_between_pod_creations(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    _, state, _, manager = _cluster(2)
    manager.run_pass()
    state.put(web_deployment(5))
    monkeypatch.setattr(manager_module, "step_over", lambda started, now: True)
    counts = []
    steps = manager._tick_steps()
    while next(steps, None) is not None:
        counts.append(len(state.pods()))
    assert [c for c in counts if 0 < c < 5][:4] == [1, 2, 3, 4]
    assert len(state.pods()) == 5


def test_a_node_gets_its_pods_of_a_pass_one_after_another(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    _, state, _, manager = _cluster(3)
    manager.run_pass()
    monkeypatch.setattr(manager_module, "step_over", lambda started, now: True)
    bound_to: list[str] = []

    def on_change(kind: str, obj: object, deleted: bool, previous: object) -> None:
        newly_bound = isinstance(previous, Pod) and not previous.node_name
        if isinstance(obj, Pod) and obj.node_name and newly_bound:
            bound_to.append(obj.node_name)

    state.subscribe(on_change)
    state.put(web_deployment(9))
    steps = manager._tick_steps()
    while next(steps, None) is not None:
        pass

    # Spread evenly (3 a node), and bound node by node: each node's session sends its three
    # in one message, where bound as decided they went n0, n1, n2, n0, ... one at a time.
    assert sorted(bound_to) == ["n0"] * 3 + ["n1"] * 3 + ["n2"] * 3
    assert bound_to == sorted(bound_to)


def test_a_pass_in_a_large_cluster_creates_and_binds_a_burst_sized_by_its_nodes(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # 10 nodes stand for 5,000 (the floor lowered from 2,000 to 4): a deployment of 20 is
    # one pass of 2 a node (BURST_PODS_PER_NODE), each node's session one message; with the
    # fixed floor it took five passes of 4, the nodes given their pods over five messages.
    monkeypatch.setattr(deployment_module, "BURST_REPLICAS", 4)
    _, state, _, manager = _cluster(10)
    manager.run_pass()
    state.put(web_deployment(20))

    manager.run_pass()

    pods = state.pods()
    assert len(pods) == 20 and all(p.node_name for p in pods)
    assert sorted({p.node_name for p in pods}) == [f"n{i}" for i in range(10)]


def test_a_step_of_the_binding_ends_between_two_nodes_only(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Where a step ends the loop runs the sessions: a node half bound then got its pods of
    # the pass in two messages.
    _, state, _, manager = _cluster(3)
    manager.run_pass()
    monkeypatch.setattr(manager_module, "step_over", lambda started, now: True)
    state.put(web_deployment(9))
    seen: set[tuple[int, ...]] = set()
    steps = manager._tick_steps()
    while next(steps, None) is not None:
        bound = [p.node_name for p in state.pods() if p.node_name]
        seen.add(tuple(sorted(bound.count(f"n{i}") for i in range(3))))

    assert seen == {(0, 0, 0), (0, 0, 3), (0, 3, 3), (3, 3, 3)}


def test_a_burst_s_creations_are_made_within_the_steps_that_store_them(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # A 10,000-pod burst's CreatePods were all made (a name drawn, a pod and its action
    # built for each) before the first was stored: ~50 ms in one step at 5,000 nodes, over
    # the 20 ms budget. Now a step makes only what it stores.
    _, state, _, manager = _cluster(2)
    manager.run_pass()
    drawn = 0
    suffix = naming.random_suffix

    def counted() -> str:
        nonlocal drawn
        drawn += 1
        return suffix()

    monkeypatch.setattr(manager_module, "random_suffix", counted)
    monkeypatch.setattr(manager_module, "step_over", lambda started, now: True)
    state.put(web_deployment(50))
    seen = []
    steps = manager._tick_steps()
    while next(steps, None) is not None:
        seen.append((drawn, len(state.pods())))
    assert [d for d, pods in seen if d != pods] == []
    assert (1, 1) in seen and (49, 49) in seen and len(state.pods()) == 50


def test_the_changed_nodes_infos_are_made_in_steps_and_a_node_changed_meanwhile_counts(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # After a burst's binding every node changed, and the next pass made all their infos
    # in one step (at 5,000 nodes ~20-50 ms, over the 20 ms budget). Now one node a step
    # (a budget used up at once), and a node that changes meanwhile is read as it is.
    _, state, _, manager = _cluster(6)
    manager.run_pass()
    state.put(web_deployment(6))
    manager.run_pass()
    assert {p.node_name for p in state.pods()} == {f"n{i}" for i in range(6)}
    monkeypatch.setattr(manager_module, "step_over", lambda started, now: True)
    state.put(web_deployment(12))
    made: list[int] = []
    steps = manager._tick_steps()
    while next(steps, None) is not None:
        bound = sum(1 for p in state.pods() if p.node_name)
        if bound == 6 and len(state.pods()) == 12:
            made.append(len(manager._pod_index._infos))
            if made[-1] == 3 and made.count(3) == 1:
                # Meanwhile n0 is cordoned (its info was made already): no pod goes there.
                node = state.get("Node", "n0")
                assert isinstance(node, Node)
                state.put(replace(node, unschedulable=True))
    # One info a step (n0's made again once it changed), none made all at once.
    assert made[0] <= 1 and len(made) >= 6
    assert all(b - a <= 1 for a, b in itertools.pairwise(made))
    pods = state.pods()
    assert len(pods) == 12 and all(p.node_name for p in pods)
    assert [p.meta.name for p in pods if p.node_name == "n0" and p.epoch > 6] == []
