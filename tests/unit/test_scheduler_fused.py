"""The fused default decision (master/scheduler/fused.py) gives the framework's answers.

schedule_batch takes the fused path whenever it is asked for the default plugins;
the general path runs when the plugins are wrapped (equal behaviour, different
objects). Random clusters -- cordoned, not ready, disconnected and full nodes,
host ports, pods with and without owners, bare pods that request nothing,
full scan and sampling -- must give the same placements, the same scores, the
same reasons and the same infos afterwards.
"""

from __future__ import annotations

import random
from dataclasses import replace

import pytest

from master.model import Pod
from master.scheduler import (
    DEFAULT_FILTERS,
    DEFAULT_SCORES,
    FilterResult,
    NodeInfo,
    build_node_infos,
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
        pod(
            f"old-{k}",
            cpu=rng.choice([0, 100, 300]),
            memory=rng.choice([0, GIB // 4]),
            owner=rng.choice(["", "a", "b"]),
            host_port=rng.choice([0, 0, 8080]),
            node_name=rng.choice(nodes).meta.name,
        )
        for k in range(count * 2)
    ]
    burst = [
        pod(
            f"new-{k}",
            cpu=rng.choice([0, 100, 250]),
            memory=rng.choice([0, GIB // 8]),
            owner=rng.choice(["", "a", "c"]),
            host_port=rng.choice([0, 0, 0, 8080]),
        )
        for k in range(count * 3)
    ]
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

    assert fused == general
    assert fused_after == general_after
    # Not a vacuous comparison: both placed some pods and refused some.
    kinds = {type(r).__name__ for r in fused.values()}
    assert kinds == {"Placement", "Unschedulable"} or len(infos) == 3


def test_no_nodes_gives_the_framework_answer() -> None:
    results, _ = schedule_batch([pod("p")], {})
    (result,) = results.values()
    assert type(result).__name__ == "Unschedulable"
