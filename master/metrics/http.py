"""The master's /metrics endpoint: prometheus_client's small threaded HTTP server.

`--metrics-listen HOST:PORT` (default 127.0.0.1:9400; `''` turns it off; port 0 picks a free
port, which the master logs). It serves the process-wide registry: the series of series.py,
the cluster gauges of cluster.py and prometheus_client's process and Python collectors
(CPU seconds, resident memory, open files, GC). A listen address that cannot be bound is an
OSError naming the flag, so the master refuses to start rather than run unobserved.
"""

from __future__ import annotations

from dataclasses import dataclass
from wsgiref.simple_server import WSGIServer

from prometheus_client import REGISTRY, start_http_server
from prometheus_client.registry import Collector, CollectorRegistry

from kernel.listen import parse_listen, show_address


@dataclass(slots=True)
class MetricsServer:
    """A running /metrics endpoint; `address` has the bound port."""

    server: WSGIServer
    address: str
    collectors: tuple[Collector, ...]
    registry: CollectorRegistry

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        for collector in self.collectors:
            self.registry.unregister(collector)


def start_metrics_server(
    listen: str, *collectors: Collector, registry: CollectorRegistry = REGISTRY
) -> MetricsServer | None:
    """Serve /metrics on `listen` (None when it is ''), with `collectors` registered."""
    where = parse_listen(listen)
    if where is None:
        return None
    host, port = where
    try:
        server, _ = start_http_server(port, host, registry)
    except OSError as exc:
        raise OSError(
            f"--metrics-listen {listen}: {exc.strerror or exc} (another master on this "
            "machine? choose another HOST:PORT, or '' to serve no metrics)"
        ) from None
    for collector in collectors:
        registry.register(collector)
    return MetricsServer(server, show_address(host, server.server_address[1]), collectors, registry)
