"""The agent's Prometheus metrics and its /metrics endpoint (`--metrics-listen`).

Series (Prometheus' conventions: `pinnace_agent_` prefix, seconds, `_total` counters):
container operations through the engine, timed and counted when they fail, by operation
(agent/runtime/metered.py observes them around the Runtime port, so the worker is not
touched); probe results by probe kind and result (a wrapper around the worker's checker).
prometheus_client's process and Python collectors come with the default registry.

The endpoint is prometheus_client's small threaded HTTP server; default 127.0.0.1:9401
(the master's is 9400, so both fit on one machine), `''` turns it off, port 0 picks one and
the agent logs it. The agent never imports the master, so this is the agent's own copy of
the few lines that start the server.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from wsgiref.simple_server import WSGIServer

from prometheus_client import REGISTRY, Counter, Histogram, start_http_server

from agent.probes import ProbeResult, ProbeTarget
from kernel.listen import parse_listen, show_address

OPERATIONS = ("list", "pull", "create", "stop", "remove", "inspect", "exec", "stats")
# A list or inspect takes milliseconds; a stop waits up to the grace period; a pull, minutes.
BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300)

CONTAINER_OPERATION = Histogram(
    "pinnace_agent_container_operation_duration_seconds",
    "Time a container operation through the engine took, by operation.",
    ["operation"],
    buckets=BUCKETS,
)
CONTAINER_ERRORS = Counter(
    "pinnace_agent_container_operation_errors_total",
    "Container operations through the engine that failed, by operation.",
    ["operation"],
)
PROBE_RESULTS = Counter(
    "pinnace_agent_probe_results_total",
    "Probes run, by probe (liveness, readiness) and result (success, failure, "
    "error: the probe itself broke).",
    ["probe", "result"],
)
for _operation in OPERATIONS:
    CONTAINER_OPERATION.labels(_operation)
    CONTAINER_ERRORS.labels(_operation)

Checker = Callable[[ProbeTarget], Awaitable[ProbeResult]]


class MetricsListenError(OSError):
    """--metrics-listen cannot be bound (in use, no such address): one sentence."""


def counted(check: Checker) -> Checker:
    """`check`, counting each result in pinnace_agent_probe_results_total."""

    async def run(target: ProbeTarget) -> ProbeResult:
        kind = target.key[2]
        try:
            result = await check(target)
        except Exception:
            PROBE_RESULTS.labels(kind, "error").inc()
            raise
        PROBE_RESULTS.labels(kind, "success" if result.ok else "failure").inc()
        return result

    return run


@dataclass(slots=True)
class MetricsServer:
    server: WSGIServer
    address: str

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def start_metrics_server(listen: str) -> MetricsServer | None:
    """Serve /metrics on `listen` (None when it is ''); OSError names the flag."""
    where = parse_listen(listen)
    if where is None:
        return None
    host, port = where
    try:
        server, _ = start_http_server(port, host, REGISTRY)
    except OSError as exc:
        raise MetricsListenError(
            f"--metrics-listen {listen}: {exc.strerror or exc} (another agent on this machine? "
            "give each its own port, or '' to turn metrics off)"
        ) from None
    return MetricsServer(server, show_address(host, server.server_address[1]))
