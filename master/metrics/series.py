"""The master's Prometheus series, declared once, observed where the work happens.

Why here: instrumentation stays a one-line insertion at each edge (a `with` around a store
write, a counter in the heartbeat branch), while names, labels and buckets live in one place
that follows Prometheus' conventions: `pinnace_` prefix, base units (`_seconds`), `_total` for
counters, few and bounded label values. Gauges that describe the cluster's current state
(pods by phase, pending pods, lease ages, queue depths) are not here: they are computed when
scraped (cluster.py), so they can never drift from the state.

prometheus_client's instruments are thread-safe: store writes observe from the thread they
run in.
"""

from __future__ import annotations

import time

from prometheus_client import Counter, Gauge, Histogram

# Sub-millisecond in-memory work up to multi-second stalls.
FAST_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)
# From apply to bound: queueing behind a pass, up to a pod that waits for capacity.
SCHEDULING_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300)
BATCH_BUCKETS = (1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000, 10000)

GRPC_HANDLING = Histogram(
    "pinnace_grpc_server_handling_seconds",
    "Time the master took to handle a gRPC call (a stream: its whole life), by method and "
    "status code.",
    ["grpc_service", "grpc_method", "grpc_code"],
    buckets=FAST_BUCKETS,
)
KUBE_API_REQUESTS = Histogram(
    "pinnace_kube_api_request_duration_seconds",
    "Time the master took to answer a Kubernetes API request (a watch: its whole life), by "
    "verb, resource and status code.",
    ["verb", "resource", "code"],
    buckets=FAST_BUCKETS,
)
SCHEDULE_ATTEMPTS = Counter(
    "pinnace_scheduler_schedule_attempts_total",
    "Pods the scheduler tried to place, by result (scheduled or unschedulable).",
    ["result"],
)
POD_SCHEDULING = Histogram(
    "pinnace_scheduler_pod_scheduling_duration_seconds",
    "Time from a pod's creation to its binding to a node.",
    buckets=SCHEDULING_BUCKETS,
)
RECONCILE = Histogram(
    "pinnace_controller_reconcile_duration_seconds",
    "Time one pass of a controller took, by controller.",
    ["controller"],
    buckets=FAST_BUCKETS,
)
HEARTBEATS = Counter(
    "pinnace_node_heartbeats_total",
    "Heartbeats received from agents.",
)
NODE_TRANSITIONS = Counter(
    "pinnace_node_condition_transitions_total",
    "Node condition changes the node lifecycle made, by the condition entered (Ready, "
    "Unknown, NotReady).",
    ["condition"],
)
PODS_EVICTED = Counter(
    "pinnace_node_pods_evicted_total",
    "Pods removed from NotReady nodes by the node lifecycle (replaced by their owners).",
)
# Set by the node lifecycle on each pass (a gauge of the master's own reading, not of the
# cluster's state: so it lives here, beside the counters).
READ_BACKLOG = Gauge(
    "pinnace_node_heartbeat_read_backlog_seconds",
    "How late the master reads the fleet's heartbeats now, as the node lifecycle excuses it "
    "(0: not behind; master/controllers/read_backlog.py).",
)
PLAN_SHRINKS = Counter(
    "pinnace_node_heartbeat_shrinks_total",
    "Shorter heartbeat plans the master wanted to offer a session, by result: admitted, or "
    "deferred by the heartbeat budget's pacing (reason: unsteady, the budget still moving or "
    "the master's loop behind in its last 5 s; "
    "plans, the plans with it over the budget; pace, with the confirmations of the last 5 s "
    "over twice the budget).",
    ["result", "reason"],
)
STORE_WRITE = Histogram(
    "pinnace_store_write_duration_seconds",
    "Time one store transaction (a batch of puts and deletes) took to become durable.",
    buckets=FAST_BUCKETS,
)
STORE_BATCH = Histogram(
    "pinnace_store_write_batch_size",
    "Objects (puts plus deletes) written per store transaction.",
    buckets=BATCH_BUCKETS,
)
COMMIT_PHASES = Histogram(
    "pinnace_commit_phase_seconds",
    "Where an API write's time goes inside the master, by phase: lock (waiting behind other "
    "writes and background flushes), plan (deciding the change on the event loop), store "
    "(the transaction, fsync included) and publish (making it visible, telling watchers).",
    ["phase"],
    buckets=FAST_BUCKETS,
)
STORE_FAILURES = Counter(
    "pinnace_store_write_failures_total",
    "Store transactions that failed (nothing of them was written).",
)
LB_PROGRAM = Histogram(
    "pinnace_lb_program_duration_seconds",
    "Time one programming of HAProxy took (runtime API commands, or a reload).",
    buckets=FAST_BUCKETS,
)
LB_FAILURES = Counter(
    "pinnace_lb_program_failures_total",
    "Programmings of HAProxy that failed (retried by the load balancer controller).",
)


class timed:
    """Observe the block's duration in `histogram`; count it in `failures` if it raises.
    Works with `with` and `async with` (to sit beside an async lock)."""

    __slots__ = ("_failures", "_histogram", "_start")

    def __init__(self, histogram: Histogram, failures: Counter | None = None) -> None:
        self._histogram = histogram
        self._failures = failures
        self._start = 0.0

    def __enter__(self) -> None:
        self._start = time.perf_counter()

    def __exit__(self, kind: type[BaseException] | None, *_: object) -> None:
        self._histogram.observe(time.perf_counter() - self._start)
        if kind is not None and issubclass(kind, Exception) and self._failures is not None:
            self._failures.inc()

    async def __aenter__(self) -> None:
        self.__enter__()

    async def __aexit__(self, kind: type[BaseException] | None, *rest: object) -> None:
        self.__exit__(kind, *rest)


def store_write(objects: int) -> timed:
    """Around a store transaction of `objects` puts and deletes."""
    STORE_BATCH.observe(objects)
    return timed(STORE_WRITE, STORE_FAILURES)


def pod_scheduled(created_at: float, now: float) -> None:
    SCHEDULE_ATTEMPTS.labels("scheduled").inc()
    POD_SCHEDULING.observe(max(0.0, now - created_at))


def pod_unschedulable() -> None:
    SCHEDULE_ATTEMPTS.labels("unschedulable").inc()


# Every bounded label value exists from the first scrape, at zero.
for _result in ("scheduled", "unschedulable"):
    SCHEDULE_ATTEMPTS.labels(_result)
for _controller in ("nodes", "deployment", "scheduler", "loadbalancer"):
    RECONCILE.labels(_controller)
for _phase in ("lock", "plan", "store", "publish"):
    COMMIT_PHASES.labels(_phase)
