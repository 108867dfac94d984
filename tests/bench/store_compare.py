"""etcd store vs SQLite store: one master carrying 1,000 hollow nodes, side by side.

    .venv/bin/python -m tests.bench.store_compare --nodes 1000 --runs 3 [--window 20]

Per run and per store (interleaved: sqlite, etcd, then again, so both see the same
load): a master on 127.0.0.1 (`--no-lb --insecure`; etcd: `--store etcd
--leader-elect` on a fresh three-member etcd, tests/etcd_cluster.py), then N hollow
agents in this process (tests/bench/hollow.py: real gRPC sessions, a heartbeat a
second, every assigned pod reported Running at once, no containers). Once every
agent is in:

- apply -> 30 running: a Deployment of 30 replicas applied over gRPC, timed until 30
  of its pods are Running (polled every 50 ms);
- then a steady window: the master's CPU (user + system over the window; etcd's
  three members' beside it, as the etcd store moves work there), heartbeat
  round trips (sent -> the master's ack for that sequence; p50/p99 over all agents),
  and write latency (a ConfigMap applied every 0.25 s; p50/p99 of the acknowledged
  ApplyManifests calls).

Printed: one line per run, then per figure and store the median of the runs with the
worst beside it, and the load average. Everything started is stopped by PID.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

import grpc
import psutil

from protos import cluster_pb2, cluster_pb2_grpc
from tests.bench.hollow import HollowAgent
from tests.bench.results import Figure, load_average, record, table
from tests.etcd_cluster import EtcdCluster

REPO = Path(__file__).resolve().parents[2]
STORES = ("sqlite", "etcd")
DEPLOYMENT = """\
apiVersion: apps/v1
kind: Deployment
metadata: {name: thirty}
spec:
  replicas: 30
  selector: {matchLabels: {app: thirty}}
  template:
    metadata: {labels: {app: thirty}}
    spec:
      containers: [{name: c, image: nginx:latest, ports: [{containerPort: 80}]}]
"""
CONFIGMAP = "apiVersion: v1\nkind: ConfigMap\nmetadata: {{name: probe}}\ndata: {{n: '{n}'}}\n"


@dataclass
class Run:
    store: str
    apply_to_running: float = 0.0
    cpu_cores: float = 0.0
    heartbeat_p50: float = 0.0
    heartbeat_p99: float = 0.0
    write_p50: float = 0.0
    write_p99: float = 0.0
    # etcd's three members together over the same window (0 for SQLite).
    etcd_cores: float = 0.0
    loads: list[float] = field(default_factory=list)


def pct(values: list[float], p: int) -> float:
    ranked = sorted(values)
    return ranked[max(0, -(-p * len(ranked) // 100) - 1)] if ranked else float("nan")


def start_master(
    store: str, data: Path, etcd: EtcdCluster | None, log: IO[bytes]
) -> subprocess.Popen[bytes]:
    flags = []
    if etcd is not None:
        flags = ["--store", "etcd", "--etcd-endpoints", etcd.endpoints, "--leader-elect"]
    return subprocess.Popen(
        [
            sys.executable, "-m", "master.cli.main", "master",
            "--listen", "127.0.0.1:0", "--api-listen", "", "--metrics-listen", "",
            "--data-dir", str(data), "--no-lb", "--insecure", "--log-level", "WARNING",
            *flags,
        ],
        stdout=subprocess.PIPE,
        stderr=log,
        cwd=REPO,
    )  # fmt: skip


async def one_run(store: str, nodes: int, window: float, per_channel: int) -> Run:
    run = Run(store)
    data = Path(tempfile.mkdtemp(prefix=f"pinnace-stores-{store}-"))
    etcd = EtcdCluster.start(members=3) if store == "etcd" else None
    log = (data.parent / f"{data.name}.log").open("w+b")
    master = start_master(store, data, etcd, log)
    members = [psutil.Process(m.process.pid) for m in etcd.members if m.process] if etcd else []
    channels: list[grpc.aio.Channel] = []
    tasks: list[asyncio.Task[None]] = []
    stop = asyncio.Event()
    try:
        assert master.stdout is not None
        line = master.stdout.readline().decode()
        if "listening on" not in line:
            raise RuntimeError(f"the {store} master did not start")
        address = line.strip().rsplit(" ", 1)[-1]
        proc = psutil.Process(master.pid)
        channels = [grpc.aio.insecure_channel(address) for _ in range(-(-nodes // per_channel))]
        agents = [HollowAgent(channels[i % len(channels)], f"h-{i:04d}") for i in range(nodes)]
        tasks = [asyncio.create_task(a.run(stop)) for a in agents]
        t0 = time.monotonic()
        while sum(1 for a in agents if a.acks) < nodes:
            if time.monotonic() - t0 > 300:
                raise RuntimeError(f"{store}: only {sum(1 for a in agents if a.acks)} joined")
            await asyncio.sleep(0.2)
        print(f"{store}: {nodes} hollow agents in after {time.monotonic() - t0:.1f}s", flush=True)
        async with grpc.aio.insecure_channel(address) as channel:
            stub = cluster_pb2_grpc.ClusterServiceStub(channel)
            t1 = time.monotonic()
            await apply(stub, DEPLOYMENT)
            while await running(stub) < 30:
                if time.monotonic() - t1 > 120:
                    raise RuntimeError(f"{store}: 30 pods not Running in 120 s")
                await asyncio.sleep(0.05)
            run.apply_to_running = time.monotonic() - t1
            await asyncio.sleep(2)  # status flushes settle
            for a in agents:
                a.timing = True
            writes: list[float] = []
            cpu0, w0 = proc.cpu_times(), time.monotonic()
            etcd0 = sum(sum(m.cpu_times()[:2]) for m in members)
            n = 0
            while time.monotonic() - w0 < window:
                run.loads.append(os.getloadavg()[0])
                n += 1
                sent = time.monotonic()
                await apply(stub, CONFIGMAP.format(n=n))
                writes.append(time.monotonic() - sent)
                await asyncio.sleep(max(0.0, 0.25 - (time.monotonic() - sent)))
            cpu1, w1 = proc.cpu_times(), time.monotonic()
            etcd1 = sum(sum(m.cpu_times()[:2]) for m in members)
        run.etcd_cores = (etcd1 - etcd0) / (w1 - w0)
        run.cpu_cores = (cpu1.user - cpu0.user + cpu1.system - cpu0.system) / (w1 - w0)
        rtts = [r for a in agents for r in a.rtts]
        run.heartbeat_p50, run.heartbeat_p99 = pct(rtts, 50), pct(rtts, 99)
        run.write_p50, run.write_p99 = pct(writes, 50), pct(writes, 99)
        print(
            f"{store}: apply->30 Running {run.apply_to_running:.2f}s; master CPU "
            f"{run.cpu_cores:.3f} cores (etcd {run.etcd_cores:.3f}); heartbeat p50 "
            f"{run.heartbeat_p50 * 1000:.1f} ms p99 "
            f"{run.heartbeat_p99 * 1000:.1f} ms ({len(rtts)} acks); write p50 "
            f"{run.write_p50 * 1000:.1f} ms p99 {run.write_p99 * 1000:.1f} ms ({len(writes)}); "
            f"load {min(run.loads):.1f}-{max(run.loads):.1f}",
            flush=True,
        )
        return run
    except BaseException:
        log.seek(0)
        print(f"{store} master's log (tail):\n" + log.read().decode(errors="replace")[-3000:])
        raise
    finally:
        stop.set()
        for t in tasks:
            t.cancel()
        for ch in channels:
            await ch.close()
        master.terminate()
        try:
            master.wait(timeout=30)
        except subprocess.TimeoutExpired:
            master.kill()
            master.wait()
        if master.stdout is not None:
            master.stdout.close()
        if etcd is not None:
            etcd.stop()
        shutil.rmtree(data, ignore_errors=True)
        log.close()
        Path(log.name).unlink(missing_ok=True)


async def apply(stub: cluster_pb2_grpc.ClusterServiceStub, text: str) -> None:
    file = cluster_pb2.SourceFile(name="bench.yaml", content=text.encode())
    await stub.ApplyManifests(cluster_pb2.ApplyManifestsRequest(files=[file]), timeout=30)


async def running(stub: cluster_pb2_grpc.ClusterServiceStub) -> int:
    reply = await stub.GetObjects(
        cluster_pb2.GetObjectsRequest(kind="Pod", label_selector={"app": "thirty"}), timeout=30
    )
    docs = [json.loads(o.json) for o in reply.objects]
    return sum(1 for d in docs if d["status"].get("phase") == "Running")


def summary(runs: list[Run]) -> list[Figure]:
    figures = []
    loads = [x for r in runs for x in r.loads]
    rows = [
        ("apply->30 Running", "apply_to_running", "s", False),
        ("master CPU", "cpu_cores", "cores", False),
        ("etcd CPU (3 members)", "etcd_cores", "cores", False),
        ("heartbeat p50", "heartbeat_p50", "ms", True),
        ("heartbeat p99", "heartbeat_p99", "ms", True),
        ("write p50", "write_p50", "ms", True),
        ("write p99", "write_p99", "ms", True),
    ]
    for store in STORES:
        mine = [r for r in runs if r.store == store]
        for label, attr, unit, ms in rows:
            values = [getattr(r, attr) * (1000 if ms else 1) for r in mine]
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
            runs.append(await one_run(store, args.nodes, args.window, args.agents_per_channel))
    return runs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nodes", type=int, default=1000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--window", type=float, default=20.0)
    parser.add_argument("--agents-per-channel", type=int, default=10)
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
