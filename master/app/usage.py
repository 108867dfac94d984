"""The latest CPU and memory each agent measured, kept in memory for `pinnace top`.

Like Kubernetes' metrics-server, usage is not state: it is never stored, a master restart
forgets it, and the next report (every few seconds) fills it again. The table holds the
last report per node; `node_usage` and `pod_usage` (pure) join it with what the cluster
knows now: a node that was deleted is left out, and a pod counts only on the node it is
bound to (a report from its previous node, before it moved, is ignored). A pod's usage is
the sum over its containers.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace

from master.model import Node, Pod, pod_ref


@dataclass(frozen=True, slots=True)
class ContainerUse:
    pod: str
    container: str
    cpu_millis: int
    memory_bytes: int


@dataclass(frozen=True, slots=True)
class NodeReport:
    cpu_millis: int
    memory_bytes: int
    containers: tuple[ContainerUse, ...]
    measured_at: float
    # Seconds since the node's previous reading (what its CPU rates are averaged over;
    # 0: the first reading since the master started).
    window_seconds: float = 0.0


@dataclass(frozen=True, slots=True)
class NodeUse:
    node: str
    cpu_millis: int
    memory_bytes: int
    allocatable_cpu_millis: int
    allocatable_memory_bytes: int
    measured_at: float
    window_seconds: float = 0.0


@dataclass(frozen=True, slots=True)
class PodUse:
    pod: str
    node: str
    cpu_millis: int
    memory_bytes: int
    measured_at: float


@dataclass(frozen=True, slots=True)
class PodContainersUse:
    """One pod's containers as its node last reported them (what PodMetrics lists)."""

    pod: Pod
    containers: tuple[ContainerUse, ...]
    measured_at: float
    window_seconds: float


class UsageTable:
    def __init__(self) -> None:
        self._reports: dict[str, NodeReport] = {}

    def record(self, node: str, report: NodeReport) -> None:
        previous = self._reports.get(node)
        if previous is not None and 0 < previous.measured_at < report.measured_at:
            report = replace(report, window_seconds=report.measured_at - previous.measured_at)
        self._reports[node] = report

    @property
    def reports(self) -> Mapping[str, NodeReport]:
        return self._reports


def node_usage(reports: Mapping[str, NodeReport], nodes: Iterable[Node]) -> list[NodeUse]:
    """Each known node that has reported, by name."""
    found = []
    for node in sorted(nodes, key=lambda n: n.meta.name):
        r = reports.get(node.meta.name)
        if r is not None:
            a = node.allocatable
            found.append(
                NodeUse(
                    node.meta.name,
                    r.cpu_millis,
                    r.memory_bytes,
                    a.cpu_millis,
                    a.memory_bytes,
                    r.measured_at,
                    r.window_seconds,
                )
            )
    return found


def pod_containers_usage(
    reports: Mapping[str, NodeReport], pods: Iterable[Pod]
) -> list[PodContainersUse]:
    """Each pod its own node reported containers of, with those containers, by `pod_ref`
    (the name the agent reports: "ns/name" outside default)."""
    found = []
    for pod in sorted(pods, key=pod_ref):
        r = reports.get(pod.node_name) if pod.node_name else None
        mine = tuple(c for c in r.containers if c.pod == pod_ref(pod)) if r is not None else ()
        if r is not None and mine:
            found.append(PodContainersUse(pod, mine, r.measured_at, r.window_seconds))
    return found


def pod_usage(reports: Mapping[str, NodeReport], pods: Iterable[Pod]) -> list[PodUse]:
    """Each pod its own node reported containers of, summed, by name (`pod`: the pod_ref the
    agent reports, "ns/name" outside default)."""
    return [
        PodUse(
            pod_ref(u.pod),
            u.pod.node_name,
            sum(c.cpu_millis for c in u.containers),
            sum(c.memory_bytes for c in u.containers),
            u.measured_at,
        )
        for u in pod_containers_usage(reports, pods)
    ]
