"""The scheduling framework: filter nodes, score the survivors, pick the best.

A pure decision, shaped after the Kubernetes scheduler framework:
    pod + NodeInfos -> filters (first failing plugin per node gives its
    reasons) -> scores (raw per node, normalized over the candidates, weighted
    and summed) -> Placement(best node) or Unschedulable(reason histogram).

Nothing here touches the store: the caller snapshots nodes and pods into
NodeInfos (nodeinfo.build_node_infos), calls `schedule` or `schedule_batch`,
and writes the bindings. `schedule_batch` threads each placement into the
infos before the next pod, so a burst spreads and never overcommits, and
returns the updated infos for the caller to keep.

Scale: a decision is linear in the number of nodes (per-node aggregates are
precomputed, the pod's demand is summed once, filters run cheap-first, and
cross-node score normalization is one pass), so by default every node is
filtered and scored: 1,000 pods over 1,000 nodes take about a second. For
larger clusters `percentage_of_nodes_to_score` enables Kubernetes' sampling:
the filter pass stops once it has found that share of feasible nodes (0 means
Kubernetes' adaptive default: 50% minus 1% per 125 nodes, at least 5%), never
fewer than 100, starting where the previous pod's pass stopped so every node
takes its turn. Sampling trades spread quality for speed, hence not the
default. Ties between equal scores go to the smallest node name, so the same
input always gives the same answer. With the default plugins a batch runs the
same decision fused into one loop over flat columns (master/scheduler/fused.py:
about 5x the placements a second, same answers), and a demand repeated in the
batch (a Deployment's replicas) is decided from per-demand columns in C-level
passes (about 3x again at 5,000 nodes sampled).
"""

from __future__ import annotations

import zlib
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol

from master.model import Pod, pod_ref
from master.scheduler import fused
from master.scheduler.host_ports import HostPorts
from master.scheduler.least_allocated import LeastAllocated
from master.scheduler.node_ready import NodeReady
from master.scheduler.node_unschedulable import NodeUnschedulable
from master.scheduler.nodeinfo import NodeInfo
from master.scheduler.resources_fit import ResourcesFit
from master.scheduler.spread import Spread

# None or an empty tuple = the pod fits; else one reason or several (a node
# short of both CPU and memory counts under both, as in Kubernetes).
FilterResult = str | tuple[str, ...] | None

NO_NODES_MESSAGE = "0/0 nodes are available: no nodes registered."

# Score every node unless the caller opts into sampling.
SCORE_ALL_NODES = 100
# With sampling on, below this many nodes every node is still scored.
MIN_FEASIBLE_NODES_TO_FIND = 100
MIN_FEASIBLE_NODES_PERCENTAGE = 5


@dataclass(frozen=True, slots=True)
class Placement:
    node_name: str
    # Weighted sum of the normalized plugin scores on the chosen node.
    score: float


@dataclass(frozen=True, slots=True)
class Unschedulable:
    # Reason -> number of nodes that gave it.
    reasons: Mapping[str, int]
    # '0/3 nodes are available: 1 node is not ready, 2 insufficient memory.'
    message: str


class FilterPlugin(Protocol):
    @property
    def name(self) -> str: ...

    def filter(self, pod: Pod, info: NodeInfo) -> FilterResult: ...


class ScorePlugin(Protocol):
    """Scores a feasible node; `normalize` turns raw scores into 0..100.

    `score` sees one candidate (and all candidates, for plugins that need
    them); `normalize` then sees every candidate's raw score at once, which is
    where cross-node quantities like a maximum belong, so scoring stays linear
    in the number of nodes.
    """

    @property
    def name(self) -> str: ...

    @property
    def weight(self) -> int: ...

    def score(self, pod: Pod, info: NodeInfo, all_infos: Sequence[NodeInfo]) -> float: ...

    def normalize(self, pod: Pod, scores: list[float]) -> list[float]: ...


# Cheap checks first; the first failing filter is the reason a node counts
# under, as in Kubernetes (so a cordoned node that is also full reports
# "unschedulable", not "insufficient cpu").
DEFAULT_FILTERS: tuple[FilterPlugin, ...] = (
    NodeUnschedulable(),
    NodeReady(),
    HostPorts(),
    ResourcesFit(),
)
DEFAULT_SCORES: tuple[ScorePlugin, ...] = (Spread(), LeastAllocated())


def feasible_nodes_to_find(node_count: int, percentage: int = SCORE_ALL_NODES) -> int:
    """How many feasible nodes are enough to score (Kubernetes' numFeasibleNodesToFind).

    `percentage` is percentageOfNodesToScore: 100 (or more) scores every node,
    0 picks Kubernetes' adaptive share for the cluster size.
    """
    if node_count < MIN_FEASIBLE_NODES_TO_FIND or percentage >= SCORE_ALL_NODES:
        return node_count
    if percentage <= 0:
        percentage = max(50 - node_count // 125, MIN_FEASIBLE_NODES_PERCENTAGE)
    return max(node_count * percentage // 100, MIN_FEASIBLE_NODES_TO_FIND)


def schedule(
    pod: Pod,
    infos: Mapping[str, NodeInfo],
    filters: Sequence[FilterPlugin] = DEFAULT_FILTERS,
    scores: Sequence[ScorePlugin] = DEFAULT_SCORES,
    percentage_of_nodes_to_score: int = SCORE_ALL_NODES,
) -> Placement | Unschedulable:
    """Choose a node for one pod, or say why none fits."""
    names = sorted(infos)
    enough = feasible_nodes_to_find(len(names), percentage_of_nodes_to_score)
    result, _ = _schedule_one(pod, names, infos, _start_index(pod, names), enough, filters, scores)
    return result


def schedule_batch(
    pods: Sequence[Pod],
    infos: Mapping[str, NodeInfo],
    filters: Sequence[FilterPlugin] = DEFAULT_FILTERS,
    scores: Sequence[ScorePlugin] = DEFAULT_SCORES,
    percentage_of_nodes_to_score: int = SCORE_ALL_NODES,
) -> tuple[dict[str, Placement | Unschedulable], dict[str, NodeInfo]]:
    """Place pods one after another, each seeing the placements before it.

    Returns the decision per pod (`pod_ref`) and the infos with every placed pod
    added. The input mapping is not modified.
    """
    current = dict(infos)
    decisions = schedule_each(pods, current, filters, scores, percentage_of_nodes_to_score)
    return {pod_ref(pod): result for pod, result in decisions}, current


def schedule_each(
    pods: Sequence[Pod],
    current: dict[str, NodeInfo],
    filters: Sequence[FilterPlugin] = DEFAULT_FILTERS,
    scores: Sequence[ScorePlugin] = DEFAULT_SCORES,
    percentage_of_nodes_to_score: int = SCORE_ALL_NODES,
) -> Iterator[tuple[Pod, Placement | Unschedulable]]:
    """`schedule_batch` one pod at a time, adding each placed pod to `current` (which it
    changes): a caller may stop between two decisions, let other work run, and go on
    with the same columns (the controller manager's slices, master/controllers/slicing.py)."""
    names = sorted(current)
    enough = feasible_nodes_to_find(len(names), percentage_of_nodes_to_score)
    start = _start_index(pods[0], names) if pods else 0
    if tuple(filters) == DEFAULT_FILTERS and tuple(scores) == DEFAULT_SCORES and names:
        # The same decision without the plugin calls (master/scheduler/fused.py).
        columns = fused.Columns(names, current)
        for pod in pods:
            chosen, score, reasons, processed = fused.decide(pod, columns, start, enough)
            start = (start + processed) % len(names)
            if chosen is None:
                message = unschedulable_message(len(names), reasons)
                yield pod, Unschedulable(reasons, message)
            else:
                name = names[chosen]
                current[name] = current[name].with_pod(pod)
                columns.place(chosen, pod)
                yield pod, Placement(name, score)
        return
    for pod in pods:
        result, processed = _schedule_one(pod, names, current, start, enough, filters, scores)
        if isinstance(result, Placement):
            current[result.node_name] = current[result.node_name].with_pod(pod)
        if names:
            start = (start + processed) % len(names)
        yield pod, result


def unschedulable_message(node_count: int, reasons: Mapping[str, int]) -> str:
    """Kubernetes' FitError text: reasons sorted, each with its node count."""
    if node_count == 0:
        return NO_NODES_MESSAGE
    parts = ", ".join(
        f"{count} {_phrase(reason, count)}" for reason, count in sorted(reasons.items())
    )
    return f"0/{node_count} nodes are available: {parts}."


def _phrase(reason: str, count: int) -> str:
    # Reasons are written for one node ("node is not ready"); say "2 nodes are
    # not ready" rather than Kubernetes' "2 node(s) ...".
    if count != 1:
        for singular, plural in (("node is ", "nodes are "), ("node has ", "nodes have ")):
            if reason.startswith(singular):
                return plural + reason[len(singular) :]
    return reason


def _start_index(pod: Pod, names: Sequence[str]) -> int:
    # A stable hash, so a lone pod in a large cluster does not always start at
    # the first node by name, and the same pod always gets the same answer.
    if not names:
        return 0
    return zlib.crc32(pod.meta.name.encode()) % len(names)


def _schedule_one(
    pod: Pod,
    names: Sequence[str],
    infos: Mapping[str, NodeInfo],
    start: int,
    enough: int,
    filters: Sequence[FilterPlugin],
    scores: Sequence[ScorePlugin],
) -> tuple[Placement | Unschedulable, int]:
    """One scheduling cycle; also returns how many nodes the filter pass visited."""
    node_count = len(names)
    if node_count == 0:
        return Unschedulable({}, NO_NODES_MESSAGE), 0
    # Bound methods hoisted out of the loop: this is the hot path, run once
    # per node per pod.
    checks = [plugin.filter for plugin in filters]
    feasible: list[NodeInfo] = []
    feasible_names: list[str] = []
    reasons: dict[str, int] = {}
    processed = 0
    for offset in range(node_count):
        name = names[(start + offset) % node_count]
        info = infos[name]
        processed += 1
        for check in checks:
            verdict = check(pod, info)
            if not verdict:
                continue
            if isinstance(verdict, str):
                reasons[verdict] = reasons.get(verdict, 0) + 1
            else:
                for reason in verdict:
                    reasons[reason] = reasons.get(reason, 0) + 1
            break
        else:
            feasible.append(info)
            feasible_names.append(name)
            if len(feasible) >= enough:
                break
    if not feasible:
        return Unschedulable(reasons, unschedulable_message(node_count, reasons)), processed

    totals = [0.0] * len(feasible)
    for scorer in scores:
        score = scorer.score
        raw = [score(pod, info, feasible) for info in feasible]
        weight = scorer.weight
        totals = [
            total + weight * value
            for total, value in zip(totals, scorer.normalize(pod, raw), strict=True)
        ]
    top = max(totals)
    best = min(name for name, total in zip(feasible_names, totals, strict=True) if total == top)
    return Placement(best, top), processed
