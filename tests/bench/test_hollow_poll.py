"""The hollow bench's convergence poll asks the master's /metrics for one family only.

A real prometheus_client server on 127.0.0.1 (port 0), as the master serves
/metrics (master/metrics/http.py): the poll reads the Running count, and the reply
carries `pinnace_pods` alone, not the other families a full scrape renders (the
poll ran once a second through every convergence the bench times, on the master
it measures).
"""

from __future__ import annotations

import urllib.request

from prometheus_client import CollectorRegistry, Counter, Gauge

from master.metrics.http import start_metrics_server
from tests.bench.hollow import RUNNING_QUERY, running_pods


def test_the_poll_reads_running_pods_from_that_family_alone() -> None:
    registry = CollectorRegistry()
    pods = Gauge("pinnace_pods", "Pods by phase.", ["phase"], registry=registry)
    pods.labels("Running").set(1234)
    pods.labels("Pending").set(5)
    beats = Counter("pinnace_heartbeats", "Beats.", ["node"], registry=registry)
    for i in range(50):
        beats.labels(f"n{i}").inc()
    server = start_metrics_server("127.0.0.1:0", registry=registry)
    assert server is not None
    try:
        url = f"http://{server.address}/metrics"
        assert running_pods(url) == 1234
        with urllib.request.urlopen(url + RUNNING_QUERY, timeout=10) as reply:
            text = reply.read().decode()
        assert 'pinnace_pods{phase="Running"} 1234.0' in text
        assert "pinnace_heartbeats" not in text
        with urllib.request.urlopen(url, timeout=10) as reply:
            assert "pinnace_heartbeats" in reply.read().decode()  # a full scrape has it
    finally:
        server.close()
