"""The scheduler's incremental inputs (master/scheduler/pod_index.py) equal the full
computation they replace, after any sequence of pod and node changes."""

from __future__ import annotations

import random
from dataclasses import replace

import pytest

from kernel.clock import FakeClock
from master.model import (
    Container,
    ContainerPort,
    Node,
    NodeStatus,
    ObjectMeta,
    Pod,
    PodSpec,
    PodStatus,
    Resources,
)
from master.scheduler import build_node_infos, pod_demand
from master.scheduler.pod_index import PodIndex
from master.state import ClusterState
from master.store import MemoryStore


def _pod(rng: random.Random, name: str, namespace: str) -> Pod:
    ports = (ContainerPort(80, host_port=rng.choice([0, 0, 8080, 9090])),)
    requests = Resources(rng.choice([0, 100, 250]), rng.choice([0, 2**20]))
    container = Container(name="c", image="nginx:latest", ports=ports, requests=requests)
    return Pod(
        meta=ObjectMeta(name=name, namespace=namespace),
        spec=PodSpec(containers=(container,)),
        owner=rng.choice(["", "web", "api"]),
    )


def _node(name: str, ready: bool) -> Node:
    room = Resources(4000, 8 * 2**30)
    return Node(
        meta=ObjectMeta(name=name),
        address="127.0.0.1",
        capacity=room,
        allocatable=room,
        status=NodeStatus(ready=ready),
    )


def _step(rng: random.Random, state: ClusterState) -> None:
    """One random change: a pod created, bound, moved, being deleted or removed; a node
    added, changed or removed (its pods may stay bound to a node that is gone)."""
    pods = state.pods()
    nodes = ["n0", "n1", "n2", "n3", "n4"]
    choice = rng.random()
    if choice < 0.2 or not pods:
        ns = rng.choice(["default", "other"])
        state.put(_pod(rng, f"p{rng.randrange(60)}", ns))
    elif choice < 0.4:
        pod = rng.choice(pods)
        state.put(replace(pod, node_name=rng.choice([*nodes, ""])))
    elif choice < 0.6:
        pod = rng.choice(pods)
        state.put(replace(pod, deletion_requested_at=rng.choice([0.0, 5.0])))
    elif choice < 0.7:
        # Its status (an agent's report), sometimes with a spec equal but not the same,
        # or another owner.
        pod = rng.choice(pods)
        status = PodStatus(reason=rng.choice(["", "ContainerCreating"]), ready=rng.random() < 0.5)
        changed = replace(pod, status=status)
        if rng.random() < 0.2:
            changed = replace(changed, spec=replace(pod.spec))
        if rng.random() < 0.1:
            changed = replace(changed, owner=rng.choice(["", "web", "api"]))
        state.put(changed)
    elif choice < 0.8:
        pod = rng.choice(pods)
        state.remove("Pod", pod.meta.name, pod.meta.namespace)
    elif choice < 0.9:
        state.put(_node(rng.choice(nodes), rng.random() < 0.7))
    else:
        state.remove("Node", rng.choice(nodes))


def _expected_pending(state: ClusterState) -> list[Pod]:
    return [p for p in state.pods() if not p.node_name and not p.deletion_requested_at]


@pytest.mark.parametrize("seed", range(20))
def test_the_index_equals_the_full_computation_after_random_changes(seed: int) -> None:
    rng = random.Random(seed)
    state = ClusterState(MemoryStore(), FakeClock())
    # Some state before the index exists (it starts from a snapshot), then changes after.
    for _ in range(30):
        _step(rng, state)
    nodes = [n for n in state.objects("Node") if isinstance(n, Node)]
    index = PodIndex(nodes, state.pods())
    state.subscribe(index.on_change)
    for i in range(400):
        _step(rng, state)
        if i % 7 == 0 or i == 399:
            nodes = [n for n in state.objects("Node") if isinstance(n, Node)]
            assert index.node_infos() == build_node_infos(nodes, state.pods())
            key = lambda p: (p.meta.namespace, p.meta.name)  # noqa: E731
            assert sorted(index.pending(), key=key) == sorted(_expected_pending(state), key=key)


def test_a_pod_bound_elsewhere_leaves_its_old_node_free() -> None:
    state = ClusterState(MemoryStore(), FakeClock())
    state.put(_node("a", True))
    state.put(_node("b", True))
    index = PodIndex([n for n in state.objects("Node") if isinstance(n, Node)], [])
    state.subscribe(index.on_change)
    container = Container(
        name="c",
        image="nginx:latest",
        ports=(ContainerPort(80, host_port=8080),),
        requests=Resources(500, 2**20),
    )
    pod = state.put(Pod(meta=ObjectMeta(name="p"), spec=PodSpec(containers=(container,))))
    assert [p.meta.name for p in index.pending()] == ["p"]
    pod = state.put(replace(pod, node_name="a"))
    assert index.pending() == []
    assert index.node_infos()["a"].requested == Resources(500, 2**20)
    assert index.node_infos()["a"].host_ports == {(8080, "TCP")}
    state.put(replace(pod, node_name="b"))
    infos = index.node_infos()
    assert (infos["a"].requested, infos["a"].host_ports, infos["a"].pod_count) == (
        Resources(),
        frozenset(),
        0,
    )
    assert infos["b"].pod_count == 1


def test_a_status_report_keeps_the_node_s_info_and_the_pending_pod_s_new_version() -> None:
    """An agent's report changes a pod's status alone: the node's NodeInfo is not made
    again at the next pass (at 50,000 pods a pass after each batch of reports re-made the
    info of every node that reported)."""
    state = ClusterState(MemoryStore(), FakeClock())
    state.put(_node("a", True))
    index = PodIndex([n for n in state.objects("Node") if isinstance(n, Node)], [])
    state.subscribe(index.on_change)
    spec = PodSpec(containers=(Container(name="c", image="nginx:latest"),))
    bound = state.put(Pod(meta=ObjectMeta(name="p"), spec=spec, node_name="a"))
    waiting = state.put(Pod(meta=ObjectMeta(name="q"), spec=spec))
    before = index.node_infos()["a"]
    state.put(replace(bound, status=PodStatus(ready=True)))
    assert index.node_infos()["a"] is before
    unschedulable = state.put(replace(waiting, status=PodStatus(reason="Unschedulable")))
    assert index.pending() == [unschedulable]


def test_a_template_s_pods_are_summed_once_when_decided_and_bound(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A Deployment's pods share their template's spec object; what they ask of a node
    (pod_demand: requests, defaulted requests, host ports) is summed once for that spec,
    not for every pod the scheduler decides and every bind the index counts (at 50,000
    pods of one template, two sums of every pod's containers). A pod of another spec,
    even an equal one, gets its own sums, and the index's totals stay the full
    computation's."""
    sums = 0
    requests = PodSpec.requests

    def counted(spec: PodSpec) -> Resources:
        nonlocal sums
        sums += 1
        return requests(spec)

    monkeypatch.setattr(PodSpec, "requests", counted)
    state = ClusterState(MemoryStore(), FakeClock())
    for name in ("a", "b"):
        state.put(_node(name, True))
    index = PodIndex([n for n in state.objects("Node") if isinstance(n, Node)], [])
    state.subscribe(index.on_change)
    ports = (ContainerPort(80, host_port=8080),)
    container = Container(
        name="c", image="nginx:latest", ports=ports, requests=Resources(250, 2**20)
    )
    spec = PodSpec(containers=(container,))
    pods = [state.put(Pod(meta=ObjectMeta(name=f"p{k}"), spec=spec, owner="web")) for k in range(6)]
    for k, pod in enumerate(pods):
        assert pod_demand(pod).requests == Resources(250, 2**20)  # (the scheduler's decision)
        state.put(replace(pod, node_name="ab"[k % 2]))
    assert sums == 1
    state.put(Pod(meta=ObjectMeta(name="q"), spec=PodSpec(containers=(container,)), node_name="b"))
    assert sums == 2
    assert pod_demand(pods[0]).host_ports == {(8080, "TCP")}
    assert sums == 3
    infos = index.node_infos()
    expected = build_node_infos(
        [n for n in state.objects("Node") if isinstance(n, Node)], state.pods()
    )
    assert infos == expected
    assert infos["b"].requested == Resources(1000, 4 * 2**20)
