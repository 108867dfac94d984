"""The fused default decision (master/scheduler/fused.py) gives the framework's answers.

schedule_batch takes the fused path whenever it is asked for the default plugins;
the general path runs when the plugins are wrapped (equal behaviour, different
objects). Random clusters -- cordoned, not ready, disconnected and full nodes,
host ports, pods with and without owners, bare pods that request nothing and
pods whose containers request only CPU or only memory or nothing at all (the score
defaults those, the filter does not), full scan and sampling -- must give the same
placements, the same scores, the same reasons and the same infos afterwards.
"""

from __future__ import annotations

import itertools
import random
from collections.abc import Iterable, Iterator
from dataclasses import replace

import pytest

from master.model import Container, Pod, Resources
from master.scheduler import (
    DEFAULT_FILTERS,
    DEFAULT_SCORES,
    FilterResult,
    NodeInfo,
    build_node_infos,
    feasible_nodes_to_find,
    fused,
    pod_demand,
    schedule_batch,
)
from tests.unit.test_scheduler import GIB, node, pod


class Wrapped:
    """A default filter under another object: schedule_batch then uses the framework."""

    def __init__(self, inner: object) -> None:
        self.inner = inner
        self.name = str(getattr(inner, "name", ""))

    def filter(self, p: Pod, info: NodeInfo) -> FilterResult:
        result: FilterResult = self.inner.filter(p, info)  # type: ignore[attr-defined]
        return result


def some_bare(rng: random.Random, p: Pod) -> Pod:
    """Sometimes add a container without requests, so scoring defaults it per container."""
    if rng.random() < 0.3:
        extra = Container(name="sidecar", image="busybox", requests=Resources(0, 0))
        p = replace(p, spec=replace(p.spec, containers=(*p.spec.containers, extra)))
    return p


def random_cluster(rng: random.Random, count: int) -> tuple[dict[str, NodeInfo], list[Pod]]:
    nodes = []
    for i in range(count):
        n = node(
            f"n-{i:03d}",
            cpu=rng.choice([0, 500, 1000, 4000]),
            memory=rng.choice([0, GIB, 4 * GIB]),
            ready=rng.random() > 0.1,
            unschedulable=rng.random() < 0.1,
        )
        if rng.random() < 0.1:
            n = replace(n, status=replace(n.status, session_lost_at=5.0))
        nodes.append(n)
    bound = [
        some_bare(
            rng,
            pod(
                f"old-{k}",
                cpu=rng.choice([0, 100, 300]),
                memory=rng.choice([0, GIB // 4]),
                owner=rng.choice(["", "a", "b"]),
                host_port=rng.choice([0, 0, 8080]),
                node_name=rng.choice(nodes).meta.name,
            ),
        )
        for k in range(count * 2)
    ]
    burst = [
        some_bare(
            rng,
            pod(
                f"new-{k}",
                cpu=rng.choice([0, 100, 250]),
                memory=rng.choice([0, GIB // 8]),
                owner=rng.choice(["", "a", "c"]),
                host_port=rng.choice([0, 0, 0, 8080]),
            ),
        )
        for k in range(count * 3)
    ]
    # Small bursts may draw none by chance: always one bare pod and one that
    # requests only CPU, with a bare sidecar, somewhere in the burst.
    sidecar = Container(name="sidecar", image="busybox")
    partial = pod("partial", cpu=150, owner=rng.choice(["", "a"]))
    partial = replace(
        partial, spec=replace(partial.spec, containers=(*partial.spec.containers, sidecar))
    )
    for extra in (pod("bare", owner=rng.choice(["", "c"])), partial):
        burst.insert(rng.randrange(len(burst) + 1), extra)
    return build_node_infos(nodes, bound), burst


@pytest.mark.parametrize("seed", range(12))
@pytest.mark.parametrize("percentage", [100, 0, 30])
def test_fused_and_framework_decide_alike(seed: int, percentage: int) -> None:
    rng = random.Random(seed)
    infos, burst = random_cluster(rng, rng.choice([3, 40, 150]))

    fused, fused_after = schedule_batch(burst, infos, percentage_of_nodes_to_score=percentage)
    general, general_after = schedule_batch(
        burst,
        infos,
        filters=[Wrapped(f) for f in DEFAULT_FILTERS],
        scores=DEFAULT_SCORES,
        percentage_of_nodes_to_score=percentage,
    )

    # Not vacuous either: the burst holds pods without requests and with partial ones.
    demands = [pod_demand(p) for p in burst]
    assert any(d.requests == Resources(0, 0) for d in demands)
    assert any(d.requests != d.nonzero_requests != Resources(0, 0) for d in demands)
    assert fused == general
    assert fused_after == general_after
    # Not a vacuous comparison: both placed some pods and refused some.
    kinds = {type(r).__name__ for r in fused.values()}
    assert kinds == {"Placement", "Unschedulable"} or len(infos) == 3


def test_no_nodes_gives_the_framework_answer() -> None:
    results, _ = schedule_batch([pod("p")], {})
    (result,) = results.values()
    assert type(result).__name__ == "Unschedulable"


@pytest.mark.parametrize("seed", range(3))
@pytest.mark.parametrize("percentage", [100, 0, 30])
def test_demand_columns_give_the_scans_answer_pod_by_pod(seed: int, percentage: int) -> None:
    """The columns a repeated demand gets (fused.Columns.columns_for) and the plain scan
    agree on every decision of a burst, placements threaded in between, starts wrapping;
    and the columns really are taken (built on the COLUMN_AFTER-th pod of a demand)."""
    rng = random.Random(seed)
    infos, _ = random_cluster(rng, 150)
    names = sorted(infos)
    enough = feasible_nodes_to_find(len(names), percentage)
    # Replicas of a few Deployments (one demand each), interleaved, enough to fill nodes.
    shapes = [(100, GIB // 8, "a"), (250, 0, "c"), (0, 0, ""), (1000, GIB, "a")]
    burst = [
        pod(f"r-{k}", cpu=c, memory=m, owner=o)
        for k in range(600)
        for c, m, o in [rng.choice(shapes)]
    ]
    by_columns, by_scan = fused.Columns(names, infos), fused.Columns(names, infos)
    start = rng.randrange(len(names))
    taken = refused = 0
    for p in burst:
        answer = fused.decide(p, by_columns, start, enough)
        expected = fused._decide_by_scan(p, by_scan, start, enough)
        chosen, score, reasons, processed = answer
        assert (chosen, score, processed) == (expected[0], expected[1], expected[3])
        if chosen is None:
            assert reasons == expected[2]
            refused += 1
        else:
            by_columns.place(chosen, p)
            by_scan.place(chosen, p)
            taken += 1
        start = (start + processed) % len(names)
    assert by_columns.used_cpu == by_scan.used_cpu
    # Not vacuous: every shape got its columns, and the burst both placed and refused.
    demand = pod_demand(burst[0])
    assert by_columns.columns_for(
        (demand.requests.cpu_millis, demand.requests.memory_bytes),
        (demand.nonzero_requests.cpu_millis, demand.nonzero_requests.memory_bytes),
    )
    assert len(by_columns._fits) == len(shapes)
    assert taken and refused


@pytest.mark.parametrize("seed", range(4))
def test_a_window_of_fitting_nodes_is_read_as_slices_with_the_scans_answer(
    seed: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    """When every node of the window from `start` fits (a burst onto nodes with room:
    nearly every decision of the hollow bench's), `_decide_by_columns` reads the window
    as two slices, with no list of positions (`compress` is not called), and gives the
    scan's answer: the same node, score and nodes visited, ties (nodes alike) to the
    first position. A window holding a node that does not fit, or wrapping past the last
    node, takes the general path and gives the scan's answer too."""
    rng = random.Random(seed)
    nodes = [node(f"n-{i:03d}", cpu=rng.choice([1000, 4000]), memory=4 * GIB) for i in range(240)]
    bound = [
        pod(
            f"old-{k}",
            cpu=100,
            owner=rng.choice(["a", "", "b"]),
            node_name=rng.choice(nodes).meta.name,
        )
        for k in range(150)
    ]
    # A few full nodes: the windows that hold one of them are not whole.
    bound += [
        pod(f"full-{i}", cpu=4000, node_name=nodes[i].meta.name) for i in rng.sample(range(240), 4)
    ]
    infos = build_node_infos(nodes, bound)
    names = sorted(infos)
    enough = 40
    burst = [pod(f"r-{k}", cpu=100, owner="a") for k in range(400)]
    by_columns, by_scan = fused.Columns(names, infos), fused.Columns(names, infos)
    # Nodes alike (same room, same pods) score alike: ties, to go to the first position.
    scores = [by_scan._score_on(i, (100, 200 * 2**20)) for i in range(len(names))]
    assert len(set(scores)) < len(scores) // 4

    listed = 0

    def counted(data: Iterable[int], selectors: Iterable[object]) -> Iterator[int]:
        nonlocal listed
        listed += 1
        return itertools.compress(data, selectors)

    monkeypatch.setattr(fused, "compress", counted)
    starts: list[int] = []
    best_in = fused._best_in

    def spied(first: int, *rest: object) -> object:
        starts.append(first)
        return best_in(first, *rest)  # type: ignore[arg-type]

    monkeypatch.setattr(fused, "_best_in", spied)
    start = rng.randrange(len(names))
    whole = general = 0
    for k, p in enumerate(burst):
        listed_before, starts_before = listed, len(starts)
        answer = fused.decide(p, by_columns, start, enough)
        expected = fused._decide_by_scan(p, by_scan, start, enough)
        chosen, score, _, processed = answer
        assert (chosen, score, processed) == (expected[0], expected[1], expected[3])
        assert chosen is not None
        if k >= fused.COLUMN_AFTER - 1:  # (the columns are taken from the third pod on)
            if processed == enough and start + enough <= len(names):
                assert listed == listed_before
                assert starts[starts_before:] == [start]
                whole += 1
            else:
                assert listed > listed_before
                general += 1
        by_columns.place(chosen, p)
        by_scan.place(chosen, p)
        start = (start + processed) % len(names)
    # Not vacuous: both paths ran.
    assert whole > 100 and general > 10
