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

State flow: `Columns.of(names, infos)` once per batch -> `decide(pod, ...)` per
pod -> `place(i, pod)` for each placement. The columns are private to the batch;
NodeInfos are never modified (the caller rebuilds the placed nodes' infos with
`NodeInfo.with_pod`, as before).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from master.model import Pod
from master.scheduler.host_ports import PORTS_TAKEN
from master.scheduler.node_ready import DISCONNECTED, NOT_READY
from master.scheduler.node_unschedulable import UNSCHEDULABLE
from master.scheduler.nodeinfo import HostPort, NodeInfo, pod_demand
from master.scheduler.resources_fit import INSUFFICIENT_CPU, INSUFFICIENT_MEMORY

SPREAD_WEIGHT = 2
LEAST_ALLOCATED_WEIGHT = 1


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


def decide(
    pod: Pod, columns: Columns, start: int, enough: int
) -> tuple[int | None, float, dict[str, int], int]:
    """(chosen position or None, its score, reasons by node count, nodes visited)."""
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
