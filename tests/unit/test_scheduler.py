"""Unit tests for master/scheduler: filters, scores, messages and bursts, as pure data.

Run as a script (`python tests/unit/test_scheduler.py`) to time a burst of
1,000 pods over 1,000 nodes.
"""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import replace

import pytest

from master.api.render import render_pod
from master.cli.describe_render import Related, describe_node
from master.model import (
    Container,
    ContainerPort,
    Node,
    NodeStatus,
    ObjectMeta,
    Pod,
    PodSpec,
    Resources,
)
from master.scheduler import (
    DEFAULT_FILTERS,
    FilterResult,
    NodeInfo,
    Placement,
    Unschedulable,
    build_node_infos,
    feasible_nodes_to_find,
    schedule,
    schedule_batch,
)
from master.scheduler.nodeinfo import (
    DEFAULT_MEMORY_REQUEST,
    DEFAULT_MILLI_CPU_REQUEST,
    nonzero_requests,
)

GIB = 1024**3


def node(
    name: str,
    cpu: int = 4000,
    memory: int = 8 * GIB,
    *,
    ready: bool = True,
    unschedulable: bool = False,
) -> Node:
    return Node(
        meta=ObjectMeta(name=name),
        address="10.0.0.1",
        capacity=Resources(cpu, memory),
        allocatable=Resources(cpu, memory),
        unschedulable=unschedulable,
        status=NodeStatus(ready=ready),
    )


def pod(
    name: str,
    cpu: int = 0,
    memory: int = 0,
    *,
    owner: str = "",
    host_port: int = 0,
    node_name: str = "",
    deleting: bool = False,
) -> Pod:
    ports = (ContainerPort(container_port=80, host_port=host_port),) if host_port else ()
    return Pod(
        meta=ObjectMeta(name=name),
        spec=PodSpec(
            containers=(
                Container(name="c", image="busybox", ports=ports, requests=Resources(cpu, memory)),
            )
        ),
        owner=owner,
        node_name=node_name,
        deletion_requested_at=100.0 if deleting else 0.0,
    )


class NotDefault:
    """A default filter under another object: schedule_batch then takes the general
    framework path instead of the fused one (master/scheduler/fused.py)."""

    def __init__(self, inner: object) -> None:
        self.inner = inner
        self.name = str(getattr(inner, "name", ""))

    def filter(self, p: Pod, info: NodeInfo) -> FilterResult:
        result: FilterResult = self.inner.filter(p, info)  # type: ignore[attr-defined]
        return result


def infos_for(*nodes: Node, pods: tuple[Pod, ...] = ()) -> dict[str, NodeInfo]:
    return build_node_infos(nodes, pods)


# --- NodeInfo ---------------------------------------------------------------


def test_build_node_infos_counts_bound_pods_including_deleting_ones() -> None:
    pods = (
        pod("a", 500, GIB, owner="web", host_port=8080, node_name="n1"),
        pod("b", 250, GIB, owner="web", node_name="n1", deleting=True),
        pod("c", 100, 0, node_name="n2"),
        pod("pending", 1000, GIB),
        pod("elsewhere", 1000, GIB, node_name="gone"),
    )

    infos = build_node_infos([node("n1"), node("n2")], pods)

    assert infos["n1"].requested == Resources(750, 2 * GIB)
    assert infos["n1"].host_ports == frozenset({(8080, "TCP")})
    assert dict(infos["n1"].pods_by_owner) == {"web": 2}
    assert infos["n1"].pod_count == 2
    assert infos["n2"].requested == Resources(100, 0)
    assert dict(infos["n2"].pods_by_owner) == {}
    assert infos["n2"].pod_count == 1


def test_with_pod_then_without_pod_restores_the_aggregates() -> None:
    empty = build_node_infos([node("n1")], [])["n1"]
    p = pod("a", 500, GIB, owner="web", host_port=8080)

    added = empty.with_pod(p)
    removed = added.without_pod(p)

    assert added.requested == Resources(500, GIB)
    # The memory request is given, the CPU one is too: nothing is defaulted.
    assert added.nonzero_requested == Resources(500, GIB)
    assert added.host_ports == frozenset({(8080, "TCP")})
    assert dict(added.pods_by_owner) == {"web": 1}
    assert added.pod_count == 1
    assert removed == empty
    assert dict(empty.pods_by_owner) == {}  # the original is untouched


# --- filters and messages ---------------------------------------------------


def test_fits_on_the_only_suitable_node() -> None:
    infos = infos_for(node("small", cpu=500), node("big", cpu=4000), node("tiny", cpu=100))

    result = schedule(pod("p", cpu=1000), infos)

    assert isinstance(result, Placement)
    assert result.node_name == "big"


def test_insufficient_memory_on_every_node_is_reported_like_kubernetes() -> None:
    infos = infos_for(*(node(f"n{i}", memory=GIB) for i in range(3)))

    result = schedule(pod("p", memory=2 * GIB), infos)

    assert isinstance(result, Unschedulable)
    assert dict(result.reasons) == {"insufficient memory": 3}
    assert result.message == "0/3 nodes are available: 3 insufficient memory."


def test_a_node_short_of_both_counts_under_both_reasons() -> None:
    infos = infos_for(
        node("both", cpu=100, memory=GIB),
        node("cpu", cpu=100, memory=8 * GIB),
        node("off", ready=False),
    )

    result = schedule(pod("p", cpu=1000, memory=2 * GIB), infos)

    assert isinstance(result, Unschedulable)
    assert dict(result.reasons) == {
        "insufficient cpu": 2,
        "insufficient memory": 1,
        "node is not ready": 1,
    }
    assert result.message == (
        "0/3 nodes are available: 2 insufficient cpu, 1 insufficient memory, 1 node is not ready."
    )


def test_requests_already_bound_count_against_allocatable() -> None:
    infos = infos_for(
        node("n1", cpu=2000),
        pods=(pod("old", cpu=1500, node_name="n1", deleting=True),),
    )

    result = schedule(pod("p", cpu=1000), infos)

    assert isinstance(result, Unschedulable)
    assert dict(result.reasons) == {"insufficient cpu": 1}


def test_not_ready_and_cordoned_nodes_are_excluded() -> None:
    infos = infos_for(
        node("a-down", ready=False),
        node("b-cordoned", unschedulable=True),
        node("c-ok"),
    )

    result = schedule(pod("p", cpu=100), infos)

    assert isinstance(result, Placement) and result.node_name == "c-ok"


def test_not_ready_and_cordoned_message_pluralizes() -> None:
    infos = infos_for(
        node("a", ready=False),
        node("b", ready=False),
        node("c", unschedulable=True),
    )

    result = schedule(pod("p"), infos)

    assert isinstance(result, Unschedulable)
    assert dict(result.reasons) == {"node is not ready": 2, "node is unschedulable": 1}
    assert result.message == (
        "0/3 nodes are available: 2 nodes are not ready, 1 node is unschedulable."
    )


def test_host_port_conflict_excludes_the_node() -> None:
    infos = infos_for(
        node("a"),
        node("b"),
        # "b" is busier, so only the port can keep a pod off "a".
        pods=(
            pod("web-1", host_port=8080, owner="web", node_name="a"),
            pod("busy", cpu=2000, memory=4 * GIB, node_name="b"),
        ),
    )

    same_port = schedule(pod("web-2", host_port=8080, owner="other"), infos)
    other_port = schedule(pod("api", host_port=9090, owner="other"), infos)

    assert isinstance(same_port, Placement) and same_port.node_name == "b"
    assert isinstance(other_port, Placement) and other_port.node_name == "a"


def test_host_port_conflict_everywhere_is_unschedulable() -> None:
    infos = infos_for(node("a"), pods=(pod("web-1", host_port=8080, node_name="a"),))

    result = schedule(pod("web-2", host_port=8080), infos)

    assert isinstance(result, Unschedulable)
    assert result.message == (
        "0/1 nodes are available: 1 node has no free ports for the requested pod ports."
    )


def test_no_nodes_at_all() -> None:
    result = schedule(pod("p"), {})

    assert isinstance(result, Unschedulable)
    assert dict(result.reasons) == {}
    assert result.message == "0/0 nodes are available: no nodes registered."


def test_without_pod_takes_back_the_defaulted_requests_too() -> None:
    empty = build_node_infos([node("n1")], [])["n1"]
    bare = pod("bare")

    added = empty.with_pod(bare)

    assert added.requested == Resources(0, 0)
    assert added.nonzero_requested == Resources(DEFAULT_MILLI_CPU_REQUEST, DEFAULT_MEMORY_REQUEST)
    assert added.without_pod(bare) == empty


def test_nonzero_requests_default_each_missing_request_per_container() -> None:
    two = Pod(
        meta=ObjectMeta(name="two"),
        spec=PodSpec(
            containers=(
                Container(name="a", image="busybox", requests=Resources(300, 0)),
                Container(name="b", image="busybox", requests=Resources(0, GIB)),
            )
        ),
    )

    assert two.spec.requests() == Resources(300, GIB)
    assert nonzero_requests(two) == Resources(
        300 + DEFAULT_MILLI_CPU_REQUEST, DEFAULT_MEMORY_REQUEST + GIB
    )
    # Built from the store, the node carries both totals.
    info = build_node_infos([node("n1")], [replace(two, node_name="n1")])["n1"]
    assert info.requested == Resources(300, GIB)
    assert info.nonzero_requested == nonzero_requests(two)


def test_zero_request_pod_fits_a_full_node() -> None:
    infos = infos_for(node("full", cpu=1000), pods=(pod("hog", cpu=1000, node_name="full"),))

    result = schedule(pod("p"), infos)

    assert isinstance(result, Placement) and result.node_name == "full"


@pytest.mark.parametrize("fused", [True, False])
def test_defaulted_requests_never_reach_the_filter(fused: bool) -> None:
    # CPU and memory fully requested, and request-less pods already bound whose
    # defaulted 100m / 200 MiB would overflow what is left: a pod without requests
    # still fits (kube-scheduler defaults them for scoring only).
    bound = (
        pod("hog", cpu=1000, memory=GIB, node_name="full"),
        pod("bare-0", node_name="full"),
        pod("bare-1", node_name="full"),
    )
    infos = infos_for(node("full", cpu=1000, memory=GIB), pods=bound)
    assert infos["full"].nonzero_requested.cpu_millis > 1000

    filters = DEFAULT_FILTERS if fused else tuple(NotDefault(f) for f in DEFAULT_FILTERS)
    results, after = schedule_batch([pod("p"), pod("q")], infos, filters=filters)

    assert [r.node_name for r in results.values() if isinstance(r, Placement)] == ["full"] * 2
    assert after["full"].requested == Resources(1000, GIB)
    assert after["full"].pod_count == 5


# --- scores -----------------------------------------------------------------


@pytest.mark.parametrize("fused", [True, False])
def test_pods_without_requests_spread_by_least_allocated(fused: bool) -> None:
    # The voting app: five single-replica Deployments, no requests, two equal
    # nodes. Spread sees one pod per owner (no help); least-allocated must, with
    # the defaulted 100m / 200 MiB, send them to alternate nodes, not all to "a".
    infos = infos_for(node("a"), node("b"))
    apps = ["vote", "redis", "worker", "db", "result"]
    pods = [pod(f"{app}-0", owner=app) for app in apps]

    filters = DEFAULT_FILTERS if fused else tuple(NotDefault(f) for f in DEFAULT_FILTERS)
    results, after = schedule_batch(pods, infos, filters=filters)

    chosen = [r.node_name for r in results.values() if isinstance(r, Placement)]
    assert chosen == ["a", "b", "a", "b", "a"]
    assert after["a"].nonzero_requested == Resources(
        3 * DEFAULT_MILLI_CPU_REQUEST, 3 * DEFAULT_MEMORY_REQUEST
    )
    # What users are shown as requested stays the plain sum: nothing was requested.
    assert after["a"].requested == after["b"].requested == Resources(0, 0)


def test_describe_node_shows_no_requests_for_pods_placed_without_requests() -> None:
    infos = infos_for(node("a"), node("b"))
    pods = [pod(f"app{i}-0", owner=f"app{i}") for i in range(4)]
    results, _ = schedule_batch(pods, infos)
    placed = [
        replace(p, node_name=r.node_name)
        for p, r in zip(pods, results.values(), strict=True)
        if isinstance(r, Placement)
    ]
    on_a = [render_pod(p, 0.0) for p in placed if p.node_name == "a"]
    assert len(on_a) == 2  # they spread

    shown = {
        "metadata": {"name": "a"},
        "spec": {},
        "status": {"allocatable": {"cpu": "4", "memory": "8Gi"}},
    }
    lines = describe_node(shown, Related(pods=on_a), 0.0).splitlines()

    allocated = lines[lines.index("Allocated resources:") :]
    assert [line.split() for line in allocated if line.split()[0] in ("cpu", "memory")] == [
        ["cpu", "0", "(0%)", "0", "(0%)"],
        ["memory", "0", "(0%)", "0", "(0%)"],
    ]


@pytest.mark.parametrize(
    ("replicas", "node_count", "cpu"),
    [(3, 2, 100), (5, 3, 100), (3, 2, 0), (5, 3, 0)],
)
def test_replicas_spread_evenly(replicas: int, node_count: int, cpu: int) -> None:
    infos = infos_for(*(node(f"n{i}") for i in range(node_count)))
    pods = [pod(f"web-{i}", cpu=cpu, owner="web") for i in range(replicas)]

    results, after = schedule_batch(pods, infos)

    placements = [r for r in results.values() if isinstance(r, Placement)]
    assert len(placements) == replicas
    per_node = Counter(p.node_name for p in placements)
    counts = [per_node.get(name, 0) for name in infos]
    assert max(counts) - min(counts) <= 1
    assert [after[name].pods_by_owner.get("web", 0) for name in infos] == counts


def test_spread_ignores_other_owners_pods() -> None:
    # "a" is busy with another deployment's pods but has none of "web".
    infos = infos_for(
        node("a"),
        node("b"),
        pods=(
            pod("web-0", owner="web", node_name="b"),
            pod("db-0", owner="db", node_name="a"),
            pod("db-1", owner="db", node_name="a"),
        ),
    )

    result = schedule(pod("web-1", owner="web"), infos)

    assert isinstance(result, Placement) and result.node_name == "a"


def test_least_allocated_prefers_the_emptier_node() -> None:
    infos = infos_for(
        node("a-busy"),
        node("b-idle"),
        pods=(pod("other", cpu=3000, memory=6 * GIB, node_name="a-busy"),),
    )

    result = schedule(pod("p", cpu=500, memory=GIB), infos)

    assert isinstance(result, Placement) and result.node_name == "b-idle"


def test_least_allocated_prefers_the_bigger_node_when_both_are_empty() -> None:
    infos = infos_for(node("a-small", cpu=1000, memory=2 * GIB), node("b-large"))

    result = schedule(pod("p", cpu=500, memory=GIB), infos)

    assert isinstance(result, Placement) and result.node_name == "b-large"


def test_a_node_with_zero_allocatable_scores_no_resource_points() -> None:
    # Both fit a zero-request pod; the empty-allocatable node must not win on room.
    infos = infos_for(node("a-empty", cpu=0, memory=0), node("b-real"))

    result = schedule(pod("p"), infos)

    assert isinstance(result, Placement) and result.node_name == "b-real"


# --- bursts and determinism -------------------------------------------------


def test_schedule_batch_never_overcommits() -> None:
    infos = infos_for(node("a", cpu=3000), node("b", cpu=3000))
    pods = [pod(f"p{i}", cpu=1000, owner="web") for i in range(10)]

    results, after = schedule_batch(pods, infos)

    placed = [r for r in results.values() if isinstance(r, Placement)]
    refused = [r for r in results.values() if isinstance(r, Unschedulable)]
    assert len(placed) == 6
    assert len(refused) == 4
    assert all(dict(r.reasons) == {"insufficient cpu": 2} for r in refused)
    assert all(r.message == "0/2 nodes are available: 2 insufficient cpu." for r in refused)
    assert after["a"].requested.cpu_millis == after["b"].requested.cpu_millis == 3000
    assert infos["a"].requested.cpu_millis == 0  # the input is not modified


def test_ties_go_to_the_smallest_node_name() -> None:
    infos = infos_for(node("c"), node("a"), node("b"))

    first = schedule(pod("p", cpu=100), infos)
    reversed_order = schedule(pod("p", cpu=100), dict(reversed(list(infos.items()))))

    assert isinstance(first, Placement) and first.node_name == "a"
    assert first == reversed_order


def test_batch_decisions_are_deterministic() -> None:
    infos = infos_for(*(node(f"n{i:02}", cpu=1000 + 100 * (i % 3)) for i in range(12)))
    pods = [pod(f"web-{i}", cpu=300, owner="web") for i in range(30)]

    first, _ = schedule_batch(pods, infos)
    second, _ = schedule_batch(pods, infos)

    assert first == second


# --- large clusters ---------------------------------------------------------


def test_feasible_nodes_to_find_follows_kubernetes() -> None:
    assert feasible_nodes_to_find(1000) == 1000  # scoring every node is the default
    assert feasible_nodes_to_find(0, 0) == 0
    assert feasible_nodes_to_find(99, 0) == 99
    assert feasible_nodes_to_find(100, 0) == 100
    assert feasible_nodes_to_find(1000, 0) == 420
    assert feasible_nodes_to_find(5000, 0) == 500
    assert feasible_nodes_to_find(10000, 0) == 500
    assert feasible_nodes_to_find(1000, 30) == 300
    assert feasible_nodes_to_find(200, 10) == 100


def test_sampling_scores_only_part_of_a_large_cluster_and_rotates() -> None:
    # n000 is idle, every other node is busy: with every node scored both pods
    # go there; sampled (100 of 200 nodes per pod, windows rotating) only the
    # pod whose window holds n000 can.
    busy = tuple(pod(f"busy-{i}", cpu=7000, node_name=f"n{i:03}") for i in range(1, 200))
    infos = infos_for(*(node(f"n{i:03}", cpu=8000) for i in range(200)), pods=busy)
    pods = [pod("a-0", cpu=100, owner="a"), pod("b-0", cpu=100, owner="b")]

    full, _ = schedule_batch(pods, infos)
    sampled, _ = schedule_batch(pods, infos, percentage_of_nodes_to_score=0)

    assert [r.node_name for r in full.values() if isinstance(r, Placement)] == ["n000"] * 2
    on_idle = [r for r in sampled.values() if isinstance(r, Placement) and r.node_name == "n000"]
    assert all(isinstance(r, Placement) for r in sampled.values())
    assert len(on_idle) == 1


def test_large_burst_places_everything_and_spreads() -> None:
    infos = infos_for(*(node(f"n{i:04}", cpu=2000, memory=4 * GIB) for i in range(300)))
    pods = [pod(f"web-{i}", cpu=500, memory=GIB, owner="web") for i in range(600)]

    results, after = schedule_batch(pods, infos)

    assert all(isinstance(r, Placement) for r in results.values())
    per_node = [info.pods_by_owner.get("web", 0) for info in after.values()]
    assert max(per_node) - min(per_node) <= 1
    assert all(info.requested.cpu_millis <= 2000 for info in after.values())


def _measure(node_count: int = 1000, pod_count: int = 1000) -> float:
    nodes = [node(f"node-{i:04}", cpu=8000, memory=16 * GIB) for i in range(node_count)]
    bound = [
        pod(f"old-{i}", cpu=250, memory=GIB // 4, owner=f"app-{i % 50}", node_name=n.meta.name)
        for i, n in enumerate(nodes * 5)
    ]
    infos = build_node_infos(nodes, bound)
    burst = [pod(f"web-{i}", cpu=100, memory=GIB // 8, owner="web") for i in range(pod_count)]
    started = time.perf_counter()
    results, _ = schedule_batch(burst, infos)
    elapsed = time.perf_counter() - started
    assert all(isinstance(r, Placement) for r in results.values())
    return elapsed


if __name__ == "__main__":
    seconds = _measure()
    print(f"schedule_batch: 1000 pods over 1000 nodes in {seconds:.3f} s")
