"""Benchmark: east-west traffic, pod -> Service cluster IP -> pod against pod -> pod direct.

Run as `python -m tests.bench.eastwest [--runs 3] [--seconds 5] [--connections 16]`.
A master (no load balancer: east-west traffic does not use it) with a service range of its
own (a random /24) and two agents with node proxies; one nginx pod behind a ClusterIP
Service on port 80, on node 1; the client is a container on the default Docker bridge (where
pods run), with python3 (pinnace/debian-python), on the other node's side of the bridge.

Three paths, measured alternately `--runs` times each, from inside the client container:
- direct: the nginx pod's container address on the bridge, port 80 (what pod-to-pod traffic
  without a Service meets: the bridge alone);
- cluster IP (L7): the Service `web`'s cluster IP, port 80 -- the node proxy (HAProxy) on
  the client's machine, at layer 7 as for any HTTP port, then the pod's published port (its
  node's advertise address);
- cluster IP (L4): the same pod behind a second Service with `appProtocol: tcp` (layer 4).
Per run: latency, sequential requests each on a new connection (connect, GET, read to the
end; p50 and p99 of `--requests`, a Python client in the container), and throughput, wrk
(Debian's package, run from the host inside the client container's network namespace with
nsenter) with `--connections` keep-alive connections for `--seconds` (requests/s, its p50
and p99 under that load; failed requests counted). Printed: the median of the runs with
the worst beside it, and the load average before and after. Everything started is stopped
by PID or container id (also on Ctrl-C).
"""

from __future__ import annotations

import argparse
import ipaddress
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import docker

from tests.bench.engine import BenchError, wait_until
from tests.bench.lb_wrk import WRK_MISSING, parse_wrk, wrk_available
from tests.bench.procs import PinnaceProcs

CLIENT_IMAGE = "pinnace/debian-python:bookworm"
SERVER_IMAGE = "nginx:latest"
LABEL = "pinnace.bench.eastwest"

MANIFEST = """\
apiVersion: apps/v1
kind: Deployment
metadata: {name: web}
spec:
  replicas: 1
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      containers:
      - name: nginx
        image: nginx:latest
        ports: [{containerPort: 80}]
---
apiVersion: v1
kind: Service
metadata: {name: web}
spec:
  selector: {app: web}
  ports: [{port: 80}]
---
apiVersion: v1
kind: Service
metadata: {name: web-tcp}
spec:
  selector: {app: web}
  ports: [{port: 80, appProtocol: tcp}]
"""

# Runs inside the client container: python3 -c CLIENT HOST PORT REQUESTS -- sequential
# requests, each on a new connection (connect, GET, read to the end), timed one by one.
CLIENT = r"""
import json, socket, sys, time
host, port, count = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
ONE = b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
lat, failed = [], 0
for _ in range(count):
    t = time.perf_counter()
    try:
        s = socket.create_connection((host, port), timeout=5)
        s.sendall(ONE)
        data = b""
        while True:
            chunk = s.recv(65536)
            if not chunk:
                break
            data += chunk
        s.close()
        if not data.startswith(b"HTTP/1.1 200"):
            raise RuntimeError(data[:60])
        lat.append((time.perf_counter() - t) * 1000)
    except Exception:
        failed += 1
lat.sort()
p50, p99 = lat[len(lat) // 2], lat[int(len(lat) * 0.99) - 1]
print(json.dumps({"p50": p50, "p99": p99, "failed": failed}))
"""


@dataclass(frozen=True, slots=True)
class Run:
    # One request at a time, each on a new connection.
    p50_ms: float
    p99_ms: float
    # wrk: keep-alive connections at full speed.
    rps: float
    load_p50_ms: float
    load_p99_ms: float
    failed: int


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m tests.bench.eastwest", description=__doc__)
    p.add_argument("--runs", type=int, default=3)
    p.add_argument("--seconds", type=float, default=5.0, help="each wrk run")
    p.add_argument("--connections", type=int, default=16)
    p.add_argument("--requests", type=int, default=300, help="each latency run")
    p.add_argument(
        "--node-death",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="then a second pod on node 2, and node 2 killed under load (default: on)",
    )
    p.add_argument("--death-seconds", type=float, default=15.0)
    return p.parse_args(argv)


def _load() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def _client_run(container: Any, host: str, args: argparse.Namespace) -> Run:
    code, output = container.exec_run(["python3", "-c", CLIENT, host, "80", str(args.requests)])
    if code != 0:
        raise BenchError(f"the client failed against {host}: {output.decode(errors='replace')}")
    data = json.loads(output.decode().strip().splitlines()[-1])
    # wrk from the host, inside the client container's network namespace: a pod's view.
    container.reload()
    pid = container.attrs["State"]["Pid"]
    wrk = [
        *("nsenter", "-t", str(pid), "-n", "wrk", "-t2", f"-c{args.connections}"),
        *(f"-d{args.seconds:.0f}s", "--timeout", "5s", "--latency", f"http://{host}/"),
    ]
    done = subprocess.run(wrk, capture_output=True, text=True, timeout=args.seconds + 60)
    if done.returncode != 0:
        raise BenchError(f"wrk failed against {host}: {done.stderr.strip()}")
    load = parse_wrk(done.stdout)
    return Run(
        data["p50"],
        data["p99"],
        load.requests_per_second,
        load.p50_ms,
        load.p99_ms,
        data["failed"] + load.errors,
    )


def _slow(values: list[float]) -> str:
    return f"{statistics.median(values):.2f} (worst {max(values):.2f})"


def summarize(runs: Sequence[Run]) -> dict[str, str]:
    """Median of the runs with the worst beside it (highest latency, lowest throughput)."""
    return {
        "p50 ms": _slow([r.p50_ms for r in runs]),
        "p99 ms": _slow([r.p99_ms for r in runs]),
        "req/s": f"{statistics.median(r.rps for r in runs):.0f} "
        f"(worst {min(r.rps for r in runs):.0f})",
        "load p50 ms": _slow([r.load_p50_ms for r in runs]),
        "load p99 ms": _slow([r.load_p99_ms for r in runs]),
        "failed": str(sum(r.failed for r in runs)),
    }


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    if not wrk_available():
        print(f"bench failed: {WRK_MISSING}", file=sys.stderr)
        return 1
    client = docker.from_env()
    network = ipaddress.IPv4Network(f"10.{random.randint(200, 239)}.{random.randint(0, 255)}.0/24")
    workdir = Path(tempfile.mkdtemp(prefix="pinnace-eastwest-"))
    run_id = uuid.uuid4().hex[:6]
    nodes = [f"ew-{run_id}-n1", f"ew-{run_id}-n2"]
    procs = PinnaceProcs(client, workdir)
    box = None
    failed = True
    try:
        procs.start_master("--no-lb", "--service-cidr", str(network))
        procs.start_agent(nodes[0], node_proxy=True)
        procs.wait_ready(nodes[:1], 60)
        manifest = workdir / "web.yaml"
        manifest.write_text(MANIFEST)
        procs.cli("apply", "-f", str(manifest))

        def ready() -> bool:
            pods = procs.get_json("pods")["items"]
            return any(
                all(c.get("ready") for c in p["status"].get("containerStatuses", [{}]))
                and p["status"].get("phase") == "Running"
                for p in pods
            )

        wait_until("the nginx pod ready", ready, 120)
        procs.start_agent(nodes[1], node_proxy=True)
        procs.wait_ready(nodes, 60)
        vip = json.loads(procs.cli("get", "svc", "web", "-o", "json").stdout)["spec"]["clusterIP"]
        tcp = json.loads(procs.cli("get", "svc", "web-tcp", "-o", "json").stdout)["spec"]
        vip_tcp = tcp["clusterIP"]
        found = client.containers.list(filters={"label": f"pinnace.node={nodes[0]}"})
        # The pod's address is its namespace's: its sandbox holder's, or its own without one.
        (server,) = [c for c in found if "pinnace.sandbox" in c.labels] or found
        direct = server.attrs["NetworkSettings"]["IPAddress"]
        box = client.containers.run(
            CLIENT_IMAGE, ["sleep", "3600"], detach=True, labels={LABEL: run_id}
        )
        wait_until(
            "the cluster IP to answer",
            lambda: box is not None and box.exec_run(["python3", "-c", _PROBE, vip])[0] == 0,
            30,
        )
        print(f"load average before: {_load()}", flush=True)
        results: dict[str, list[Run]] = {"direct": [], "service": [], "tcp": []}
        for _ in range(args.runs):
            results["direct"].append(_client_run(box, direct, args))
            results["service"].append(_client_run(box, vip, args))
            results["tcp"].append(_client_run(box, vip_tcp, args))
        print(f"load average after:  {_load()}")
        print(
            f"east-west, median of {args.runs} runs (worst): latency of {args.requests} "
            f"sequential requests each on a new connection; wrk -t2 -c{args.connections} "
            f"-d{args.seconds:.0f}s (keep-alive) from the client's network namespace; nginx, "
            "one pod"
        )
        columns = ("p50 ms", "p99 ms", "req/s", "load p50 ms", "load p99 ms")
        print(f"{'path':<32}" + "".join(f"{c:<21}" for c in columns) + "failed")
        labels = {
            "direct": f"direct {direct}",
            "service": f"cluster IP {vip} (L7)",
            "tcp": f"cluster IP {vip_tcp} (L4)",
        }
        for key, runs in results.items():
            s = summarize(runs)
            print(f"{labels[key]:<32}" + "".join(f"{s[c]:<20} " for c in columns) + s["failed"])
        if args.node_death:
            print(node_death(procs, client, box, vip, nodes, args))
        failed = False
        return 0
    except BenchError as e:
        print(f"bench failed: {e} (logs: {workdir})", file=sys.stderr)
        return 1
    finally:
        if box is not None:
            box.remove(force=True)
        procs.close()
        subprocess.run(
            ["ip", "route", "del", "local", str(network), "dev", "lo", "table", "local"],
            capture_output=True,
            check=False,
        )
        # Its master's and agents' state and logs: kept only for a run that failed, and said.
        if not failed:
            subprocess.run(["rm", "-rf", "--one-file-system", str(workdir)], check=False)


# Sequential GETs to the cluster IP, each on a new connection, for SECONDS; one JSON line.
_STREAM = r"""
import json, socket, sys, time
host, seconds = sys.argv[1], float(sys.argv[2])
ok, failed, errors = 0, 0, {}
until = time.monotonic() + seconds
while time.monotonic() < until:
    try:
        s = socket.create_connection((host, 80), timeout=5)
        s.sendall(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        data = b""
        while True:
            chunk = s.recv(65536)
            if not chunk:
                break
            data += chunk
        s.close()
        good = data.startswith(b"HTTP/1.1 200")
    except Exception as e:
        good = False
        errors[type(e).__name__] = errors.get(type(e).__name__, 0) + 1
    ok += good
    failed += not good
    time.sleep(0.005)
print(json.dumps({"ok": ok, "failed": failed, "errors": errors}))
"""


def _servers(workdir: Path, node: str) -> int:
    """The endpoints the node's proxy holds for Service `web` (its section's servers that
    have an address: empty slots are `0.0.0.0:0 disabled`)."""
    try:
        text = (workdir / "agent-state" / node / "nodeproxy" / "haproxy.cfg").read_text()
    except OSError:
        return 0
    section = text.split("listen default.web:80\n", 1)[-1].split("\nlisten ", 1)[0]
    servers = [line.split() for line in section.splitlines() if line.strip().startswith("server ")]
    return sum(1 for fields in servers if not fields[2].startswith("0.0.0.0:"))


def node_death(
    procs: PinnaceProcs,
    client: docker.DockerClient,
    box: Any,
    vip: str,
    nodes: list[str],
    args: argparse.Namespace,
) -> str:
    """A second pod on node 2, then node 2 dies (its agent kill -9, its containers removed)
    under a stream of requests to the cluster IP: how many failed."""
    procs.cli("scale", "deployment", "web", "--replicas", "2")

    # Both pods ready, one per node, and both node proxies serving both.
    def spread() -> bool:
        pods = procs.get_json("pods")["items"]
        ready = [
            p
            for p in pods
            if p["status"].get("phase") == "Running"
            and all(c.get("ready") for c in p["status"].get("containerStatuses", [{}]))
        ]
        on = {p["spec"].get("nodeName") for p in ready}
        return len(ready) == 2 and on == set(nodes)

    try:
        wait_until("a ready pod on each node", spread, 120)
        wait_until(
            "both node proxies to hold both pods",
            lambda: all(_servers(procs.workdir, n) == 2 for n in nodes),
            30,
        )
    except BenchError as e:
        return f"node death: not measured ({e})"
    box.reload()
    stream = subprocess.Popen(
        ["docker", "exec", box.id, "python3", "-c", _STREAM, vip, str(args.death_seconds)],
        stdout=subprocess.PIPE,
        text=True,
    )
    time.sleep(args.death_seconds / 3)
    killed = time.monotonic()
    procs.kill(procs.agents[nodes[1]])
    for container in client.containers.list(filters={"label": f"pinnace.node={nodes[1]}"}):
        container.remove(force=True)
    removed = time.monotonic() - killed
    out, _ = stream.communicate(timeout=args.death_seconds + 60)
    data = json.loads(out.strip().splitlines()[-1])
    return (
        f"node death (agent of node 2 kill -9, its pod's container removed {removed:.1f} s "
        f"later) under sequential new-connection requests to the cluster IP for "
        f"{args.death_seconds:.0f} s: {data['ok'] + data['failed']} requests, "
        f"{data['failed']} failed {data['errors'] or ''}; load {_load()}"
    )


_PROBE = r"""
import socket, sys
s = socket.create_connection((sys.argv[1], 80), timeout=2)
s.sendall(b"GET / HTTP/1.0\r\n\r\n")
sys.exit(0 if s.recv(12).startswith(b"HTTP/1.1 200") else 1)
"""


if __name__ == "__main__":
    started = time.monotonic()
    code = main()
    print(f"({time.monotonic() - started:.0f} s)")
    sys.exit(code)
