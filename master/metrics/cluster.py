"""The cluster's current state as Prometheus gauges, computed when /metrics is scraped.

Why at scrape time: pods by phase, pending pods, node lease ages, controller queue depths and
the heartbeat budget with the plans the agents run are views of the state the master already
holds; computing them on demand costs nothing
between scrapes and can never disagree with `pinnace get`. The pod counts are the
exception: counting 50,000 pods at every scrape walked them all on the event loop, so a
state listener keeps them (`PodTally`, moved by each change's previous and new version;
`count_pods` is the full count it must equal). `measure_cluster` is the pure part (plain
data in, counts out). `ClusterCollector` is the edge: the HTTP server scrapes
from its own thread while the state belongs to the asyncio loop, so the collector asks the
loop to run the measurement and waits for it (bounded, so a stuck loop never hangs a scrape).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass

from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from master.model import Node, Pod, PodPhase, StoredObject

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class HeartbeatGauges:
    """The master's heartbeat budget (master/controllers/heartbeat_budget.py) and plans:
    after a join or apply burst, whether the agents are back on the cluster's plan."""

    # Heartbeats a second the plans are sized for now, and its cap (0: no cap).
    budget: float
    cap: float
    # The interval of the cluster's plan now (what a node registering gets).
    interval: float
    # Heartbeats a second the sessions' newest plans add up to, and the sessions by the
    # interval of their newest plan (seconds, to a tenth).
    planned: float
    sessions_by_interval: Mapping[float, int]


@dataclass(frozen=True, slots=True)
class ClusterGauges:
    pods_by_phase: Mapping[str, int]
    pending_pods: int
    lease_ages: Mapping[str, float]
    queue_depths: Mapping[str, int]
    heartbeats: HeartbeatGauges | None = None


@dataclass(frozen=True, slots=True)
class PodTotals:
    """Pods by phase (every phase, zeros included) and the unbound ones not being deleted."""

    by_phase: Mapping[str, int]
    pending: int


def _waiting(pod: Pod) -> bool:
    return not pod.node_name and not pod.deletion_requested_at


def count_pods(pods: Iterable[Pod]) -> PodTotals:
    """The totals over `pods` from scratch (what PodTally must equal)."""
    phases = {phase.value: 0 for phase in PodPhase}
    pending = 0
    for pod in pods:
        phases[pod.status.phase.value] += 1
        if _waiting(pod):
            pending += 1
    return PodTotals(phases, pending)


class PodTally:
    """PodTotals kept by a ClusterState listener: each change moves one pod's share (its
    previous version out, its new one in), so a scrape reads two numbers per phase."""

    def __init__(self, pods: Iterable[Pod]) -> None:
        totals = count_pods(pods)
        self._phases = dict(totals.by_phase)
        self._pending = totals.pending

    def on_change(
        self, kind: str, obj: StoredObject, deleted: bool, previous: StoredObject | None
    ) -> None:
        if not isinstance(obj, Pod):
            return
        if (
            isinstance(previous, Pod)
            and not deleted
            and previous.status.phase is obj.status.phase
            and _waiting(previous) == _waiting(obj)
        ):
            return  # (most status reports: nothing to move)
        if isinstance(previous, Pod):
            self._phases[previous.status.phase.value] -= 1
            self._pending -= _waiting(previous)
        if not deleted:
            self._phases[obj.status.phase.value] += 1
            self._pending += _waiting(obj)

    def totals(self) -> PodTotals:
        return PodTotals(dict(self._phases), self._pending)


def measure_cluster(
    pods: PodTotals,
    nodes: Sequence[Node],
    last_seen: Callable[[str], float | None],
    monotonic_now: float,
    queue_depths: Mapping[str, int],
    heartbeats: HeartbeatGauges | None = None,
) -> ClusterGauges:
    """The pods' totals, and seconds since each node's last heartbeat (nodes not heard
    from since the master started have none); `heartbeats` as they are."""
    ages: dict[str, float] = {}
    for node in nodes:
        seen = last_seen(node.meta.name)
        if seen is not None:
            ages[node.meta.name] = max(0.0, monotonic_now - seen)
    return ClusterGauges(
        dict(pods.by_phase),
        pods.pending,
        ages,
        {**queue_depths, "scheduler": pods.pending},
        heartbeats,
    )


def gauge_families(g: ClusterGauges | None) -> list[Metric]:
    """The metric families for `g`; with None, the same families without samples."""
    pods = GaugeMetricFamily("pinnace_pods", "Pods by phase.", labels=["phase"])
    pending = GaugeMetricFamily(
        "pinnace_scheduler_pending_pods", "Pods waiting to be bound to a node."
    )
    ages = GaugeMetricFamily(
        "pinnace_node_lease_age_seconds",
        "Seconds since the node's last heartbeat (its lease expires at --lease-seconds).",
        labels=["node"],
    )
    depths = GaugeMetricFamily(
        "pinnace_controller_queue_depth",
        "Work items waiting for a controller's next pass, by controller.",
        labels=["controller"],
    )
    beats = heartbeat_families(g.heartbeats if g is not None else None)
    if g is not None:
        for phase, count in g.pods_by_phase.items():
            pods.add_metric([phase], count)
        pending.add_metric([], g.pending_pods)
        for node, age in sorted(g.lease_ages.items()):
            ages.add_metric([node], age)
        for controller, depth in sorted(g.queue_depths.items()):
            depths.add_metric([controller], depth)
    return [pods, pending, ages, depths, *beats]


# The family listing every node: computed only by a scrape that asks for it.
LEASE_AGES = "pinnace_node_lease_age_seconds"


def state_families(g: ClusterGauges | None) -> list[Metric]:
    """`gauge_families` but the lease ages: what a scrape asking only for pods or the
    budget needs (read every second by a bench or a dashboard: at 5,000 nodes the lease
    ages, one series a node, were ~5 % of the master's CPU while it applied 50,000 pods)."""
    return [f for f in gauge_families(g) if f.name != LEASE_AGES]


def lease_age_families(g: ClusterGauges | None) -> list[Metric]:
    """The lease ages alone (one series a node)."""
    return [f for f in gauge_families(g) if f.name == LEASE_AGES]


def heartbeat_families(h: HeartbeatGauges | None) -> list[Metric]:
    """The heartbeat budget's and plans' families for `h`; with None, without samples."""
    budget = GaugeMetricFamily(
        "pinnace_node_heartbeat_budget_per_second",
        "Heartbeats a second from all nodes the master sizes their plans for now: its cap, "
        "less while its event loop runs late (a join or apply burst), grown back after.",
    )
    cap = GaugeMetricFamily(
        "pinnace_node_heartbeat_budget_cap_per_second",
        "The heartbeat budget's cap (--max-heartbeats-per-second; 0: no cap).",
    )
    interval = GaugeMetricFamily(
        "pinnace_node_heartbeat_interval_seconds",
        "The heartbeat interval of the cluster's plan now, for its size and budget (what a "
        "node registering gets and what the sessions' plans move to).",
    )
    planned = GaugeMetricFamily(
        "pinnace_node_heartbeat_planned_per_second",
        "Heartbeats a second the agents' session plans add up to (one over each interval).",
    )
    sessions = GaugeMetricFamily(
        "pinnace_node_sessions",
        "Agent sessions by the heartbeat interval of their newest plan, in seconds (a "
        "shorter one counted from when it is offered).",
        labels=["heartbeat_interval"],
    )
    if h is not None:
        budget.add_metric([], h.budget)
        cap.add_metric([], h.cap)
        interval.add_metric([], h.interval)
        planned.add_metric([], h.planned)
        for seconds, count in sorted(h.sessions_by_interval.items()):
            sessions.add_metric([f"{seconds:g}"], count)
    return [budget, cap, interval, planned, sessions]


class ClusterCollector(Collector):
    """Runs `measure` on `loop` for each scrape (from the HTTP server's thread)."""

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        measure: Callable[[], ClusterGauges],
        timeout: float = 5.0,
        families: Callable[[ClusterGauges | None], list[Metric]] = gauge_families,
    ) -> None:
        self._loop = loop
        self._measure = measure
        self._timeout = timeout
        # Which of the families it serves: a scrape restricted by name (`?name[]=`) runs
        # only the collectors that describe a name asked for, so the lease ages, one series
        # a node, live in a collector of their own (`state_families`, `lease_age_families`).
        self._families = families

    def describe(self) -> Iterable[Metric]:
        # Without describe(), registering would call collect() from the loop's own thread.
        return self._families(None)

    def collect(self) -> Iterable[Metric]:
        done: concurrent.futures.Future[ClusterGauges] = concurrent.futures.Future()

        def run() -> None:
            try:
                done.set_result(self._measure())
            except Exception as exc:
                done.set_exception(exc)

        try:
            self._loop.call_soon_threadsafe(run)
            gauges = done.result(self._timeout)
        except Exception as exc:  # a closed loop, a stuck loop, a failed measurement
            log.warning("cluster gauges left out of this scrape: %s", exc or type(exc).__name__)
            return []
        return self._families(gauges)
