"""What routing by host costs: requests through the Ingress port against the Service's own port.

Run as `python -m tests.bench.ingress [--requests 1000] [--rounds 3]` (Docker, HAProxy and
`make images` needed; about a minute). One master and one agent on 127.0.0.1, a Deployment of
two pinnace/httpd pods, a LoadBalancer Service on a free port and an Ingress routing host
`a.test` to it. Each round sends `--requests` GETs one after the other, each on a new
connection, first to the Service's port, then to the Ingress port (Host: a.test), and takes
the rate and the median and 99th percentile latency. Both paths are the same HAProxy and the
same pods: the difference is the HTTP frontend's host and path matching. Figures are medians
over the rounds with the worst beside them, recorded in tests/bench/results.jsonl with the
load average.
"""

from __future__ import annotations

import argparse
import http.client
import statistics
import sys
import tempfile
import time
from pathlib import Path

import docker

from tests.bench.results import Figure, load_average, record, table
from tests.integration.cluster import LocalCluster, wait_for
from tests.integration.test_ingress import _free_offset, _free_ports, _says

COMMAND = "python -m tests.bench.ingress"

MANIFESTS = """apiVersion: apps/v1
kind: Deployment
metadata: {name: alpha}
spec:
  replicas: 2
  selector: {matchLabels: {app: alpha}}
  template:
    metadata: {labels: {app: alpha}}
    spec:
      containers:
        - name: web
          image: pinnace/httpd:latest
          imagePullPolicy: IfNotPresent
          env: [{name: MESSAGE, value: alpha}]
          ports: [{containerPort: 80}]
---
apiVersion: v1
kind: Service
metadata: {name: alpha}
spec:
  type: LoadBalancer
  selector: {app: alpha}
  ports: [{name: http, port: 80, targetPort: 80}]
---
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata: {name: web}
spec:
  rules:
    - host: a.test
      http:
        paths:
          - {path: /, pathType: Prefix, backend: {service: {name: alpha, port: {number: 80}}}}
"""


def _round(port: int, host: str, requests: int) -> tuple[float, float, float]:
    """(requests/s, median ms, 99th percentile ms) of `requests` sequential GETs."""
    latencies = []
    start = time.perf_counter()
    for _ in range(requests):
        sent = time.perf_counter()
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
        try:
            conn.request("GET", "/", headers={"Host": host})
            resp = conn.getresponse()
            resp.read()
        finally:
            conn.close()
        if resp.status != 200:
            raise AssertionError(f"{host} on port {port} answered {resp.status}")
        latencies.append(time.perf_counter() - sent)
    total = time.perf_counter() - start
    latencies.sort()
    p99 = latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))]
    return requests / total, statistics.median(latencies) * 1000, p99 * 1000


def _figures(path: str, rounds: list[tuple[float, float, float]]) -> list[Figure]:
    rate, p50, p99 = (list(x) for x in zip(*rounds, strict=True))
    n = len(rounds)
    return [
        Figure(f"{path} requests/s", statistics.median(rate), "req/s",
               f"median of {n}, worst {min(rate):.0f}"),
        Figure(f"{path} latency p50", statistics.median(p50), "ms",
               f"median of {n}, worst {max(p50):.2f}"),
        Figure(f"{path} latency p99", statistics.median(p99), "ms",
               f"median of {n}, worst {max(p99):.2f}"),
    ]  # fmt: skip


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--requests", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="pinnace-bench-ingress-") as tmp:
        workdir = Path(tmp)
        cluster = LocalCluster(workdir, docker.from_env())
        try:
            http_port, https_port = _free_ports(2)
            offset = _free_offset((80,))
            cluster.start_master(
                *("--lb-port-offset", str(offset), "--metrics-listen", ""),
                *("--ingress-http-port", str(http_port), "--ingress-https-port", str(https_port)),
            )
            cluster.start_agent("n1", "--metrics-listen", "")
            (workdir / "bench.yaml").write_text(MANIFESTS)
            cluster.cli("apply", "-f", str(workdir / "bench.yaml"))
            wait_for("the Ingress", lambda: _says(http_port, "a.test") == "alpha", timeout=90)
            wait_for("the Service", lambda: _says(80 + offset, "x") == "alpha", timeout=30)
            service, ingress = [], []
            for _ in range(args.rounds):
                service.append(_round(80 + offset, "x", args.requests))
                ingress.append(_round(http_port, "a.test", args.requests))
        finally:
            cluster.close()
    figures = _figures("service port", service) + _figures("ingress (host a.test)", ingress)
    print(table(figures))
    print(f"load average: {load_average()}", file=sys.stderr)
    record(figures, f"{COMMAND} --requests {args.requests} --rounds {args.rounds}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
