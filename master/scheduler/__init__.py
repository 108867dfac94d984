"""The master's scheduler: pure placement decisions over per-node aggregates.

`build_node_infos(nodes, pods)` turns a store snapshot into NodeInfos;
`schedule(pod, infos)` / `schedule_batch(pods, infos)` return a Placement or an
Unschedulable (with Kubernetes-style reasons) per pod. No I/O: the caller binds.
"""

from master.scheduler.framework import (
    DEFAULT_FILTERS,
    DEFAULT_SCORES,
    FilterPlugin,
    FilterResult,
    Placement,
    ScorePlugin,
    Unschedulable,
    feasible_nodes_to_find,
    schedule,
    schedule_batch,
    schedule_each,
    unschedulable_message,
)
from master.scheduler.nodeinfo import NodeInfo, PodDemand, build_node_infos, pod_demand

__all__ = [
    "DEFAULT_FILTERS",
    "DEFAULT_SCORES",
    "FilterPlugin",
    "FilterResult",
    "NodeInfo",
    "Placement",
    "PodDemand",
    "ScorePlugin",
    "Unschedulable",
    "build_node_infos",
    "feasible_nodes_to_find",
    "pod_demand",
    "schedule",
    "schedule_batch",
    "schedule_each",
    "unschedulable_message",
]
