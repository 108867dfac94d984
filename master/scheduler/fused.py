"""The default plugins' decision in one loop over flat per-node columns (pure).

Why: the framework calls four filters and two scores per node per pod, each
reaching through NodeInfo -> Node -> Resources and recomputing the pod's owner
key. A profile of 2,000 placements on 5,000 nodes spent nearly all its time in
those calls and attribute chains, not in deciding. Here the same decision --
NodeUnschedulable, NodeReady, HostPorts, ResourcesFit, then SelectorSpread
(weight 2) plus NodeResourcesLeastAllocated (weight 1) -- reads plain lists
indexed by node position, which a batch updates in place as it places pods.

Same answers, not nearly the same: the filters give the same reasons in the
same order, the scores are computed with the same float operations in the same
order, the filter pass visits the same nodes (sampling included) and ties go to
the smallest name. tests/unit/test_scheduler_fused.py compares the two on random
clusters. framework.schedule_batch takes this path whenever it is asked for the
default plugins; any other plugin list goes through the general framework.

Demand columns: even fused, the per-node loop in Python was the whole cost at
5,000 nodes (a profile of 2,000 sampled placements: 83% in `decide`'s own lines,
~1 us for each of the ~500 nodes a sampled pass visits). But a burst is mostly
the replicas of a few Deployments, which ask for the same resources, and one
placement changes one node. So once a batch has seen a demand `COLUMN_AFTER`
times, Columns keeps, for that demand, a byte per node (1: the node-level
filters pass and the requests fit) and the node's least-allocated score with
that pod on it, and `place` updates the placed node's entries. A decision for
such a pod then finds its window with `itertools.compress` and scores it with
`map` and a table of the few spread terms (one per peer count), all in C: the
same nodes, the same float operations, the same tie-break (positions are in
name order, so the first of the maxima in position order is the smallest name);
`itemgetter` fetches the window's values of a column in one call (~1.25x over
`map`).
Pods with host ports, and a pass that finds no feasible node (it must count
the reasons), take the plain loop.

State flow: `Columns(names, infos)` once per batch -> `decide(pod, ...)` per
pod -> `place(i, pod)` for each placement. The columns are private to the batch;
NodeInfos are never modified (the caller rebuilds the placed nodes' infos with
`NodeInfo.with_pod`, as before).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from itertools import compress, islice, repeat
from operator import add, itemgetter

from master.model import Pod
from master.scheduler.host_ports import PORTS_TAKEN
from master.scheduler.node_ready import DISCONNECTED, NOT_READY
from master.scheduler.node_unschedulable import UNSCHEDULABLE
from master.scheduler.nodeinfo import HostPort, NodeInfo, pod_demand
from master.scheduler.resources_fit import INSUFFICIENT_CPU, INSUFFICIENT_MEMORY

SPREAD_WEIGHT = 2
LEAST_ALLOCATED_WEIGHT = 1
# A demand gets its columns on its third pod in a batch: building them is one pass
# over every node (about what a full-scan decision costs, ten sampled ones at
# 5,000 nodes), so a demand seen once or twice is decided by the plain loop.
COLUMN_AFTER = 3

# (cpu millis, memory bytes): what a filter or the score compares.
Demand = tuple[int, int]


class Columns:
    """Per-node values the default plugins read, by position in `names`."""

    def __init__(self, names: Sequence[str], infos: Mapping[str, NodeInfo]) -> None:
        self.names = names
        rows = [infos[name] for name in names]
        # The node-level filters' verdict (a node does not change within a batch).
        self.blocked: list[str | None] = [
            UNSCHEDULABLE
            if i.node.unschedulable
            else NOT_READY
            if not i.node.status.ready
            else DISCONNECTED
            if i.node.status.session_lost_at
            else None
            for i in rows
        ]
        self.alloc_cpu = [i.node.allocatable.cpu_millis for i in rows]
        self.alloc_memory = [i.node.allocatable.memory_bytes for i in rows]
        self.used_cpu = [i.requested.cpu_millis for i in rows]
        self.used_memory = [i.requested.memory_bytes for i in rows]
        # Non-zero requested (missing requests defaulted): only the score reads these.
        self.scored_cpu = [i.nonzero_requested.cpu_millis for i in rows]
        self.scored_memory = [i.nonzero_requested.memory_bytes for i in rows]
        self.ports: list[frozenset[HostPort]] = [i.host_ports for i in rows]
        self.pod_count = [i.pod_count for i in rows]
        self._owners = [i.pods_by_owner for i in rows]
        # Peers per node of each owner asked about so far (filled on first use).
        self._by_owner: dict[str, list[int]] = {}
        # Pods seen per demand (requests, non-zero requests) and, from COLUMN_AFTER on,
        # its columns: fits[requests][i] is 1 where the pod passes every filter on node
        # i, scores[non-zero requests][i] its weighted least-allocated score there.
        self._seen: dict[tuple[Demand, Demand], int] = {}
        self._fits: dict[Demand, bytearray] = {}
        self._scores: dict[Demand, list[float]] = {}

    def columns_for(self, requests: Demand, scored: Demand) -> tuple[bytearray, list[float]] | None:
        """The demand's columns, built on its COLUMN_AFTER-th pod; None before."""
        fit = self._fits.get(requests)
        score = self._scores.get(scored)
        if fit is not None and score is not None:
            return fit, score
        key = (requests, scored)
        seen = self._seen[key] = self._seen.get(key, 0) + 1
        if seen < COLUMN_AFTER:
            return None
        if fit is None:
            fit = self._fits[requests] = bytearray(
                self._fits_on(i, requests) for i in range(len(self.blocked))
            )
        if score is None:
            score = self._scores[scored] = [
                self._score_on(i, scored) for i in range(len(self.blocked))
            ]
        return fit, score

    def _fits_on(self, i: int, want: Demand) -> int:
        """1 where the node-level filters and ResourcesFit pass (host ports aside)."""
        if self.blocked[i] is not None:
            return 0
        cpu, memory = want
        if cpu > 0 and cpu > self.alloc_cpu[i] - self.used_cpu[i]:
            return 0
        if memory > 0 and memory > self.alloc_memory[i] - self.used_memory[i]:
            return 0
        return 1

    def _score_on(self, i: int, want: Demand) -> float:
        """NodeResourcesLeastAllocated, weighted, with the pod on node i (as `decide`)."""
        a_cpu, r_cpu = self.alloc_cpu[i], self.scored_cpu[i] + want[0]
        cpu = 0.0 if a_cpu <= 0 or r_cpu > a_cpu else (a_cpu - r_cpu) / a_cpu
        a_mem, r_mem = self.alloc_memory[i], self.scored_memory[i] + want[1]
        memory = 0.0 if a_mem <= 0 or r_mem > a_mem else (a_mem - r_mem) / a_mem
        return LEAST_ALLOCATED_WEIGHT * ((cpu + memory) * 50.0)

    def peers(self, owner_key: str) -> list[int]:
        """Pods of this owner per node (owner "": every pod counts, as in Spread)."""
        if not owner_key:
            return self.pod_count
        found = self._by_owner.get(owner_key)
        if found is None:
            found = self._by_owner[owner_key] = [o.get(owner_key, 0) for o in self._owners]
        return found

    def place(self, i: int, pod: Pod) -> None:
        """Account for `pod` bound to the node at position i."""
        demand = pod_demand(pod)
        self.used_cpu[i] += demand.requests.cpu_millis
        self.used_memory[i] += demand.requests.memory_bytes
        self.scored_cpu[i] += demand.nonzero_requests.cpu_millis
        self.scored_memory[i] += demand.nonzero_requests.memory_bytes
        if demand.host_ports:
            self.ports[i] = self.ports[i] | demand.host_ports
        self.pod_count[i] += 1
        owner = pod.owner_key
        if owner:
            self.peers(owner)[i] += 1
        for want, fit in self._fits.items():
            fit[i] = self._fits_on(i, want)
        for want, score in self._scores.items():
            score[i] = self._score_on(i, want)


def decide(
    pod: Pod, columns: Columns, start: int, enough: int
) -> tuple[int | None, float, dict[str, int], int]:
    """(chosen position or None, its score, reasons by node count, nodes visited).

    The reasons are counted only when no node fits (the only time they are read).
    """
    demand = pod_demand(pod)
    if not demand.host_ports:
        requests, scored = demand.requests, demand.nonzero_requests
        found = columns.columns_for(
            (requests.cpu_millis, requests.memory_bytes),
            (scored.cpu_millis, scored.memory_bytes),
        )
        if found is not None:
            decided = _decide_by_columns(pod, columns, found[0], found[1], start, enough)
            if decided is not None:
                return decided
    return _decide_by_scan(pod, columns, start, enough)


def _decide_by_columns(
    pod: Pod, columns: Columns, fit: bytearray, score: list[float], start: int, enough: int
) -> tuple[int, float, dict[str, int], int] | None:
    """The scan's answer from the demand's columns; None when no node fits."""
    node_count = len(fit)
    end = start + enough
    if end <= node_count and enough > 1 and fit.find(0, start, end) < 0:
        # Every node of the window fits (a burst onto nodes with room: nearly every
        # decision): the window is positions start..end-1, as the general path below
        # finds it, and its values are two slices, with no list of positions made and
        # no per-position lookup (at 5,000 nodes ~a third of a decision's CPU).
        return _best_in(start, columns.peers(pod.owner_key)[start:end], score[start:end], enough)
    view = memoryview(fit)
    # The first `enough` fitting positions from `start` on, wrapping once.
    after = list(islice(compress(range(start, node_count), view[start:]), enough))
    before: list[int] = []
    if len(after) < enough and start:
        before = list(islice(compress(range(start), view[:start]), enough - len(after)))
    view.release()
    if not after and not before:
        return None
    if len(after) + len(before) < enough:
        processed = node_count
    else:
        last = before[-1] if before else after[-1]
        processed = (last - start) % node_count + 1
    # In position order, which is name order: the first maximum is the smallest name.
    feasible = before + after
    peers = columns.peers(pod.owner_key)
    if len(feasible) == 1:
        only = feasible[0]
        return only, _total_of_one(peers[only], score[only]), {}, processed
    # One C call per column for the window's values (a tuple, in `feasible`'s order).
    pick = itemgetter(*feasible)
    chosen, top, _, _ = _best_in(0, pick(peers), pick(score), processed)
    return feasible[chosen], top, {}, processed


def _best_in(
    first: int, counts: Sequence[int], least_allocated: Sequence[float], processed: int
) -> tuple[int, float, dict[str, int], int]:
    """`decide`'s answer over a window of two or more fitting nodes given by their peer
    counts and least-allocated scores: the first of the highest totals, its position
    `first` + its index in the window."""
    highest = float(max(counts))
    if highest <= 0:
        totals = list(map(add, repeat(0.0 + SPREAD_WEIGHT * 100.0), least_allocated))
    else:
        # SelectorSpread, as in the scan, once per peer count up to the highest.
        spread = [
            0.0 + SPREAD_WEIGHT * (100.0 * (highest - float(count)) / highest)
            for count in range(int(highest) + 1)
        ]
        # (itemgetter over the window's two or more counts: a tuple, one C call, ~1.4x
        # over `map(spread.__getitem__, counts)`.)
        totals = list(map(add, itemgetter(*counts)(spread), least_allocated))
    top = max(totals)
    return first + totals.index(top), top, {}, processed


def _total_of_one(count: int, least_allocated: float) -> float:
    """A lone candidate's total: its spread is 100 (it holds the highest count or none)."""
    return 0.0 + SPREAD_WEIGHT * (100.0 if count <= 0 else 0.0) + least_allocated


def _decide_by_scan(
    pod: Pod, columns: Columns, start: int, enough: int
) -> tuple[int | None, float, dict[str, int], int]:
    """The plain loop: every visited node filtered and every feasible one scored."""
    demand = pod_demand(pod)
    want_cpu = demand.requests.cpu_millis
    want_memory = demand.requests.memory_bytes
    wanted_ports = demand.host_ports
    blocked = columns.blocked
    alloc_cpu, alloc_memory = columns.alloc_cpu, columns.alloc_memory
    used_cpu, used_memory = columns.used_cpu, columns.used_memory
    ports = columns.ports
    node_count = len(blocked)
    reasons: dict[str, int] = {}
    feasible: list[int] = []
    processed = 0
    i = start
    for _ in range(node_count):
        if i == node_count:
            i = 0
        processed += 1
        verdict = blocked[i]
        if verdict is None and wanted_ports and not wanted_ports.isdisjoint(ports[i]):
            verdict = PORTS_TAKEN
        if verdict is not None:
            reasons[verdict] = reasons.get(verdict, 0) + 1
            i += 1
            continue
        short_cpu = want_cpu > 0 and want_cpu > alloc_cpu[i] - used_cpu[i]
        short_memory = want_memory > 0 and want_memory > alloc_memory[i] - used_memory[i]
        if short_cpu or short_memory:
            if short_cpu:
                reasons[INSUFFICIENT_CPU] = reasons.get(INSUFFICIENT_CPU, 0) + 1
            if short_memory:
                reasons[INSUFFICIENT_MEMORY] = reasons.get(INSUFFICIENT_MEMORY, 0) + 1
            i += 1
            continue
        feasible.append(i)
        if len(feasible) >= enough:
            break
        i += 1
    if not feasible:
        return None, 0.0, reasons, processed

    # SelectorSpread: raw = peers on the node; normalized 100 * (max - raw) / max.
    peers = columns.peers(pod.owner_key)
    raw = [float(peers[k]) for k in feasible]
    highest = max(raw)
    names = columns.names
    scored_cpu, scored_memory = columns.scored_cpu, columns.scored_memory
    score_cpu = demand.nonzero_requests.cpu_millis
    score_memory = demand.nonzero_requests.memory_bytes
    best: int | None = None
    best_total = 0.0
    for k, count in zip(feasible, raw, strict=True):
        spread = 100.0 if highest <= 0 else 100.0 * (highest - count) / highest
        # NodeResourcesLeastAllocated: mean free fraction after the pod, 0..100,
        # over the non-zero requests (the filter above used the plain ones).
        a_cpu, r_cpu = alloc_cpu[k], scored_cpu[k] + score_cpu
        cpu = 0.0 if a_cpu <= 0 or r_cpu > a_cpu else (a_cpu - r_cpu) / a_cpu
        a_mem, r_mem = alloc_memory[k], scored_memory[k] + score_memory
        memory = 0.0 if a_mem <= 0 or r_mem > a_mem else (a_mem - r_mem) / a_mem
        total = 0.0 + SPREAD_WEIGHT * spread + LEAST_ALLOCATED_WEIGHT * ((cpu + memory) * 50.0)
        if best is None or total > best_total or (total == best_total and names[k] < names[best]):
            best, best_total = k, total
    return best, best_total, reasons, processed
