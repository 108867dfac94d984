"""etcd store vs SQLite store: one master carrying 1,000 hollow nodes, side by side.

    .venv/bin/python -m tests.bench.store_compare --nodes 1000 --runs 3 [--window 20]

Per run and per store (interleaved: sqlite, etcd, then again, so both see the same
load), tests/bench/hollow.py's run: a master on 127.0.0.1 (`--no-lb --insecure`;
etcd: `--store etcd --leader-elect` on a fresh three-member etcd,
tests/etcd_cluster.py), N hollow agents in fleet processes (real gRPC sessions, a
heartbeat at the master's interval, every assigned pod reported Running at once, no
containers); once every agent is in, a Deployment of 30 replicas is applied and timed
until 30 pods are Running (apply -> 30 running: the control plane's part, no container
starts); then a steady window: the master's CPU (user + system over the window; etcd's
three members' beside it, as the etcd store moves work there), heartbeat round trips
(p50/p99 over all agents) and write latency (a ConfigMap applied every 0.25 s over
gRPC; p50/p99 of the acknowledged ApplyManifests calls).

Printed: one line per run, then per figure and store the median of the runs with the
worst beside it, and the load average. Everything started is stopped by PID.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import time
from dataclasses import dataclass, field

import grpc
import psutil

from protos import cluster_pb2, cluster_pb2_grpc
from tests.bench import hollow
from tests.bench.results import Figure, load_average, record, table
from tests.etcd_cluster import EtcdCluster

STORES = ("sqlite", "etcd")
CONFIGMAP = "apiVersion: v1\nkind: ConfigMap\nmetadata: {{name: probe}}\ndata: {{n: '{n}'}}\n"


@dataclass
class Run:
    store: str
    apply_to_running: float = 0.0
    cpu_cores: float = 0.0
    # etcd's three members together over the same window (0 for SQLite).
    etcd_cores: float = 0.0
    heartbeat_p50: float = 0.0
    heartbeat_p99: float = 0.0
    write_p50: float = 0.0
    write_p99: float = 0.0
    # Probe writes refused or failed (a leader change under load shows here).
    write_failures: int = 0
    loads: list[float] = field(default_factory=list)


def pct(values: list[float], p: int) -> float:
    ranked = sorted(values)
    return ranked[max(0, -(-p * len(ranked) // 100) - 1)] if ranked else float("nan")


async def one_run(store: str, nodes: int, window: float, timeout: float) -> Run:
    run = Run(store)
    etcd = EtcdCluster.start(members=3) if store == "etcd" else None
    members = [psutil.Process(m.process.pid) for m in etcd.members if m.process] if etcd else []
    writes: list[float] = []
    etcd_cpu: list[float] = []

    async def probe(address: str, seconds: float) -> None:
        etcd0 = sum(sum(m.cpu_times()[:2]) for m in members)
        w0 = time.monotonic()
        async with grpc.aio.insecure_channel(address) as channel:
            stub = cluster_pb2_grpc.ClusterServiceStub(channel)
            n = 0
            while time.monotonic() - w0 < seconds:
                run.loads.append(os.getloadavg()[0])
                n += 1
                file = cluster_pb2.SourceFile(
                    name="probe.yaml", content=CONFIGMAP.format(n=n).encode()
                )
                sent = time.monotonic()
                try:
                    await stub.ApplyManifests(
                        cluster_pb2.ApplyManifestsRequest(files=[file]), timeout=30
                    )
                except grpc.aio.AioRpcError as e:
                    run.write_failures += 1
                    print(f"{store}: a write failed: {e.code().name}: {e.details()}", flush=True)
                else:
                    writes.append(time.monotonic() - sent)
                await asyncio.sleep(max(0.0, 0.25 - (time.monotonic() - sent)))
        etcd1 = sum(sum(m.cpu_times()[:2]) for m in members)
        etcd_cpu.append((etcd1 - etcd0) / (time.monotonic() - w0))

    flags: tuple[str, ...] = ()
    if etcd is not None:
        flags = ("--store", "etcd", "--etcd-endpoints", etcd.endpoints, "--leader-elect")
    try:
        result = await hollow.main_async(
            nodes,
            30,
            window,
            timeout=timeout,
            insecure=True,
            master_args=flags,
            during_window=probe,
        )
    finally:
        if etcd is not None:
            etcd.stop()
    if result is None:
        raise RuntimeError(f"{store}: the hollow run did not converge")
    run.apply_to_running = result.converge_s
    run.cpu_cores = result.cpu_cores
    run.etcd_cores = etcd_cpu[0] if etcd_cpu else 0.0
    run.heartbeat_p50, run.heartbeat_p99 = result.rtt_p50_ms, result.rtt_p99_ms
    run.write_p50, run.write_p99 = pct(writes, 50) * 1000, pct(writes, 99) * 1000
    print(
        f"{store}: apply->30 Running {run.apply_to_running:.2f}s; master CPU "
        f"{run.cpu_cores:.3f} cores (etcd {run.etcd_cores:.3f}); heartbeat p50 "
        f"{run.heartbeat_p50:.1f} ms p99 {run.heartbeat_p99:.1f} ms; write p50 "
        f"{run.write_p50:.1f} ms p99 {run.write_p99:.1f} ms ({len(writes)} ok, "
        f"{run.write_failures} failed); "
        f"load {min(run.loads):.1f}-{max(run.loads):.1f}",
        flush=True,
    )
    return run


def summary(runs: list[Run]) -> list[Figure]:
    figures = []
    loads = [x for r in runs for x in r.loads]
    rows = [
        ("apply->30 Running", "apply_to_running", "s"),
        ("master CPU", "cpu_cores", "cores"),
        ("etcd CPU (3 members)", "etcd_cores", "cores"),
        ("heartbeat p50", "heartbeat_p50", "ms"),
        ("heartbeat p99", "heartbeat_p99", "ms"),
        ("write p50", "write_p50", "ms"),
        ("write p99", "write_p99", "ms"),
        ("writes failed", "write_failures", ""),
    ]
    for store in STORES:
        mine = [r for r in runs if r.store == store]
        for label, attr, unit in rows:
            values = [getattr(r, attr) for r in mine]
            note = (
                f"median of {len(values)}, worst {max(values):.3f}; "
                f"load {min(loads):.1f}-{max(loads):.1f}"
            )
            figures.append(Figure(f"{label} ({store})", statistics.median(values), unit, note))
    return figures


async def main_async(args: argparse.Namespace) -> list[Run]:
    runs = []
    for _ in range(args.runs):
        for store in STORES:
            runs.append(await one_run(store, args.nodes, args.window, args.timeout))
    return runs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nodes", type=int, default=1000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--window", type=float, default=20.0)
    parser.add_argument("--timeout", type=float, default=300.0, help="seconds to join/converge")
    parser.add_argument("--no-record", action="store_true")
    args = parser.parse_args()
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    runs = asyncio.run(main_async(args))
    figures = summary(runs)
    print(table(figures))
    print(f"load average now: {load_average()}")
    if not args.no_record:
        record(figures, "python -m tests.bench.store_compare " + " ".join(sys.argv[1:]))


if __name__ == "__main__":
    main()
