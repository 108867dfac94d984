"""The Kubernetes HTTP API beside the gRPC API: list, watch and write latency, master CPU.

Starts a real master (`--insecure --no-lb`: plaintext on both APIs, so neither pays
TLS and only the control plane is measured), then:

1. list: a deployment of 10,000 pods (pending: no nodes, so nothing but the
   master works), listed `--lists` times through `GET /api/v1/namespaces/default/pods`
   and through gRPC `GetObjects(kind=Pod)`; latency p50/p99 and the master's CPU
   seconds per list.
   Both sides include the client decoding every object (JSON in both answers).
2. watch: `--changes` writes (a ConfigMap's data, patched over HTTP one after
   another) followed by an HTTP watch and a gRPC watch at once; for each change, the
   time from the write's answer to its event on each watch (p50/p99).
3. writes under load: `--nodes` hollow agents (tests/bench/hollow.py, in a child
   process) heartbeat every second while HTTP PATCHes (a deployment's replicas
   between 1 and 2, and ConfigMap data) go at `--rate`/s for `--seconds`; their
   latency p50/p99 and the master's CPU share. The target: p99 <= 50 ms.
   `--node-lists-every S` lists every node meanwhile (what a dashboard or
   `kubectl get nodes -w` polling does).

    python -m tests.bench.kube_api --pods 10000 --changes 1000 --nodes 1000

Every figure printed comes from this run; run it 3 times and report median and worst.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import aiohttp
import grpc
import psutil

from protos import cluster_pb2, cluster_pb2_grpc, node_pb2  # noqa: F401
from tests.bench import master_metrics as mm
from tests.bench import write_trace

REPO = Path(__file__).resolve().parents[2]


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def ms(values: list[float]) -> str:
    return f"p50 {pct(values, 0.5) * 1000:7.1f} ms   p99 {pct(values, 0.99) * 1000:7.1f} ms"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_master(
    workdir: Path, metrics_port: int = 0, profile: str = "", stalls_ms: float = 0.0
) -> tuple[subprocess.Popen[bytes], str, str]:
    """The master; its /metrics on `metrics_port` (0: none)."""
    out, _, clock = profile.partition(":")
    runner = ["master.cli.main"]
    if profile:
        runner = ["tests.bench.profile_master", out, f"{clock or 'cpu'}@usr1"]
    elif stalls_ms:
        runner = ["tests.bench.debug_master", str(workdir / "stalls.json"), f"{stalls_ms:g}"]
    proc = subprocess.Popen(
        [
            *(sys.executable, "-m", *runner, "master", "--insecure", "--no-lb"),
            *("--listen", "127.0.0.1:0", "--api-listen", "127.0.0.1:0"),
            *("--metrics-listen", f"127.0.0.1:{metrics_port}" if metrics_port else ""),
            *("--data-dir", str(workdir / "data"), "--log-level", "WARNING"),
        ],
        stdout=subprocess.PIPE,
        stderr=(workdir / "master.log").open("ab"),
        cwd=REPO,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    assert proc.stdout is not None
    grpc_line = proc.stdout.readline().decode()
    api_line = proc.stdout.readline().decode()
    if "listening on" not in grpc_line or "API on" not in api_line:
        proc.kill()
        raise SystemExit(f"the master did not start; see {workdir}/master.log")
    return proc, grpc_line.split()[-1], api_line.split()[-1]


DEPLOYMENT: dict[str, Any] = {
    "apiVersion": "apps/v1",
    "kind": "Deployment",
    "metadata": {"name": "bench"},
    "spec": {
        "replicas": 0,
        "selector": {"matchLabels": {"app": "bench"}},
        "template": {
            "metadata": {"labels": {"app": "bench"}},
            "spec": {"containers": [{"name": "c", "image": "pinnace/httpd:latest"}]},
        },
    },
}
PODS = "/api/v1/namespaces/default/pods"
DEPLOYMENTS = "/apis/apps/v1/namespaces/default/deployments"
CONFIGMAPS = "/api/v1/namespaces/default/configmaps"
MERGE = {"Content-Type": "application/merge-patch+json"}


class Bench:
    def __init__(
        self, master: psutil.Process, http: aiohttp.ClientSession, api: str, metrics: str
    ) -> None:
        self.master = master
        self.http = http
        self.api = api
        self.metrics = metrics
        self.profiling = False
        # Each write of the write phase: (start on time.monotonic(), latency).
        self.writes: list[tuple[float, float]] = []

    async def scrape(self) -> mm.Samples:
        async with self.http.get(self.metrics) as r:
            return mm.parse(await r.text())

    def cpu(self) -> float:
        t = self.master.cpu_times()
        return float(t.user + t.system)

    async def request(self, method: str, path: str, body: Any = None, **kw: Any) -> Any:
        data = None if body is None else json.dumps(body)
        async with self.http.request(method, self.api + path, data=data, **kw) as r:
            text = await r.read()
            if r.status >= 300:
                raise SystemExit(f"{method} {path}: {r.status} {text[:300]!r}")
            return json.loads(text)


async def bench_list(b: Bench, stub: Any, pods: int, lists: int) -> None:
    dep = {**DEPLOYMENT, "spec": {**DEPLOYMENT["spec"], "replicas": pods}}
    await b.request("POST", DEPLOYMENTS, dep)
    deadline = time.monotonic() + 300
    while len((await b.request("GET", PODS + "?limit=1"))["items"]) == 0 or (
        (await b.request("GET", PODS + "?limit=1")).get("metadata", {}).get("remainingItemCount", 0)
        + 1
        < pods
    ):
        if time.monotonic() > deadline:
            raise SystemExit(f"{pods} pods were not created within 300 s")
        await asyncio.sleep(1.0)
    await asyncio.sleep(2.0)  # let the controllers settle
    for name, call in (
        ("HTTP GET pods (JSON)", lambda: b.request("GET", PODS)),
        (
            "gRPC GetObjects(Pod)",
            lambda: stub.GetObjects(cluster_pb2.GetObjectsRequest(kind="Pod")),
        ),
    ):
        times: list[float] = []
        cpu0 = b.cpu()
        for _ in range(lists):
            t0 = time.perf_counter()
            out = await call()
            if not isinstance(out, dict):
                # A client reads the objects either way: the gRPC answer carries JSON too.
                out = {"items": [json.loads(o.json) for o in out.objects]}
            times.append(time.perf_counter() - t0)
            count = len(out["items"])
            assert count >= pods, count
        cpu = (b.cpu() - cpu0) / lists
        print(f"list {pods} pods  {name:24} {ms(times)}   master CPU {cpu * 1000:6.0f} ms/list")
    await b.request("DELETE", DEPLOYMENTS + "/bench")


async def bench_watch(b: Bench, stub: Any, changes: int) -> None:
    cm = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "w"}, "data": {"n": "0"}}
    created = await b.request("POST", CONFIGMAPS, cm)
    since = created["metadata"]["resourceVersion"]
    seen_http: dict[str, float] = {}
    seen_grpc: dict[str, float] = {}

    async def http_watch() -> None:
        url = f"{b.api}{CONFIGMAPS}?watch=1&resourceVersion={since}&timeoutSeconds=600"
        async with b.http.get(url) as r:
            async for line in r.content:
                ev = json.loads(line)
                n = ev["object"].get("data", {}).get("n", "")
                seen_http.setdefault(n, time.perf_counter())
                if len(seen_http) >= changes:
                    return

    async def grpc_watch() -> None:
        request = cluster_pb2.WatchObjectsRequest(kind="ConfigMap", resource_version=int(since))
        async for change in stub.WatchObjects(request):
            n = json.loads(change.object.json).get("data", {}).get("n", "")
            seen_grpc.setdefault(n, time.perf_counter())
            if len(seen_grpc) >= changes:
                return

    watchers = [asyncio.create_task(http_watch()), asyncio.create_task(grpc_watch())]
    await asyncio.sleep(0.5)
    acked: dict[str, float] = {}
    cpu0 = b.cpu()
    for i in range(1, changes + 1):
        await b.request("PATCH", CONFIGMAPS + "/w", {"data": {"n": str(i)}}, headers=MERGE)
        acked[str(i)] = time.perf_counter()
    await asyncio.wait_for(asyncio.gather(*watchers), timeout=120)
    cpu = b.cpu() - cpu0
    for name, seen in (("HTTP watch", seen_http), ("gRPC watch", seen_grpc)):
        lags = [max(0.0, seen[n] - t) for n, t in acked.items() if n in seen]
        missing = changes - len(lags)
        print(
            f"watch {changes} changes  {name:12} write answered -> event: {ms(lags)}"
            + (f"   MISSING {missing}" if missing else "")
        )
    print(f"  (master CPU for the {changes} writes and both watches: {cpu:.2f} s)")
    await b.request("DELETE", CONFIGMAPS + "/w")


async def list_nodes_every(b: Bench, every: float, times: list[float]) -> None:
    """GET /api/v1/nodes every `every` seconds (each list's latency into `times`)."""
    while True:
        t0 = time.perf_counter()
        await b.request("GET", "/api/v1/nodes")
        times.append(time.perf_counter() - t0)
        await asyncio.sleep(max(0.0, every - (time.perf_counter() - t0)))


async def bench_writes(
    b: Bench,
    grpc_address: str,
    nodes: int,
    rate: float,
    seconds: float,
    idle: float,
    node_lists_every: float = 0.0,
) -> None:
    hollow = None
    if nodes:
        hollow = subprocess.Popen(
            [sys.executable, "-m", "tests.bench.kube_api", "--hollow-for", grpc_address,
             "--nodes", str(nodes)],
            cwd=REPO,
            stdout=subprocess.DEVNULL,
        )  # fmt: skip
    try:
        deadline = time.monotonic() + 600
        while nodes:
            listed = await b.request("GET", "/api/v1/nodes")
            ready = sum(
                1
                for n in listed["items"]
                for c in n["status"]["conditions"]
                if c["type"] == "Ready" and c["status"] == "True"
            )
            if ready >= nodes:
                break
            if time.monotonic() > deadline:
                raise SystemExit(f"only {ready} of {nodes} hollow nodes became Ready in 600 s")
            # Listing 1,000 nodes costs the master ~0.1 s of CPU: not every second.
            await asyncio.sleep(5.0)
        await b.request(
            "POST", DEPLOYMENTS, {**DEPLOYMENT, "spec": {**DEPLOYMENT["spec"], "replicas": 1}}
        )
        cm = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "load"}, "data": {}}
        await b.request("POST", CONFIGMAPS, cm)
        times: list[float] = []
        # Heartbeats alone first: the master's CPU for them, so a write's share is known.
        idle_scrape, idle_cpu, idle_t = await b.scrape(), b.cpu(), time.perf_counter()
        await asyncio.sleep(idle)
        idle_window = mm.delta(await b.scrape(), idle_scrape)
        idle_wall = time.perf_counter() - idle_t
        idle_share = (b.cpu() - idle_cpu) / idle_wall
        beats = mm.total(idle_window, "pinnace_node_heartbeats_total")
        print(
            f"heartbeats alone for {idle_wall:.0f} s: master CPU {idle_share * 100:.0f}% of a "
            f"core, {beats / idle_wall:.0f} heartbeats/s"
            + (f", {idle_share * idle_wall / beats * 1e6:.0f} us CPU each" if beats else "")
        )
        print("  " + mm.lag_line(idle_window))
        load_before = os.getloadavg()[0]
        before = await b.scrape()
        if b.profiling:
            # profile_master.py / debug_master.py: the window starts
            os.kill(b.master.pid, signal.SIGUSR1)
        cpu0, t_start = b.cpu(), time.perf_counter()
        fleet = psutil.Process(hollow.pid) if hollow is not None else None
        fleet_cpu0 = _cpu(fleet)
        own = psutil.Process()
        own_cpu0 = _cpu(own)
        node_lists: list[float] = []
        lister = (
            asyncio.create_task(list_nodes_every(b, node_lists_every, node_lists))
            if node_lists_every
            else None
        )
        total = int(rate * seconds)
        for i in range(total):
            due = t_start + i / rate
            await asyncio.sleep(max(0.0, due - time.perf_counter()))
            t0, started = time.perf_counter(), time.monotonic()
            if i % 2:
                patch = {"spec": {"replicas": 1 + i % 4 // 2}}
                await b.request("PATCH", DEPLOYMENTS + "/bench", patch, headers=MERGE)
            else:
                await b.request(
                    "PATCH", CONFIGMAPS + "/load", {"data": {"i": str(i)}}, headers=MERGE
                )
            times.append(time.perf_counter() - t0)
            b.writes.append((started, times[-1]))
        wall = time.perf_counter() - t_start
        if lister is not None:
            lister.cancel()
            await asyncio.gather(lister, return_exceptions=True)
            print(f"GET /api/v1/nodes ({nodes} nodes) x {len(node_lists)}: {ms(node_lists)}")
        if b.profiling:
            os.kill(b.master.pid, signal.SIGUSR2)  # the window ended
        share = (b.cpu() - cpu0) / wall
        window = mm.delta(await b.scrape(), before)
        per_write = max(0.0, share - idle_share) * wall / max(1, len(times))
        print(
            f"writes at {rate:g}/s for {seconds:g} s with {nodes} hollow nodes heartbeating: "
            f"{ms(times)}   master CPU {share * 100:.0f}% of a core "
            f"(~{per_write * 1000:.1f} ms per write beyond the heartbeats)   "
            f"load average (1 min) {load_before:.1f} before, {os.getloadavg()[0]:.1f} after"
        )
        print("  " + mm.lag_line(window))
        print("  " + mm.commit_line(window))
        print(
            f"  master RSS {b.master.memory_info().rss / 2**20:.0f} MiB; CPU beside it in the "
            f"window: hollow fleet {(_cpu(fleet) - fleet_cpu0) / wall * 100:.0f}%, this bench "
            f"{(_cpu(own) - own_cpu0) / wall * 100:.0f}% of a core"
        )
    finally:
        if hollow is not None:
            hollow.send_signal(signal.SIGTERM)
            hollow.wait(timeout=30)


def _cpu(process: psutil.Process | None) -> float:
    if process is None:
        return 0.0
    t = process.cpu_times()
    return float(t.user + t.system + t.children_user + t.children_system)


async def run_hollow(address: str, nodes: int) -> None:
    from tests.bench.hollow_fleet import HollowAgent

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    channels = [grpc.aio.insecure_channel(address) for _ in range(max(1, nodes // 100))]
    agents = [HollowAgent(f"hollow-{i:04d}") for i in range(nodes)]
    tasks = [
        asyncio.create_task(a.run(channels[i % len(channels)], stop)) for i, a in enumerate(agents)
    ]
    await stop.wait()
    for t in tasks:
        t.cancel()
    for ch in channels:
        await ch.close()


def report_stalls(path: Path, limit_ms: float, top: int = 15) -> None:
    """The callbacks that held the master's loop longest in CPU time (`--stalls`)."""
    if not path.exists():
        print(f"no stall record ({path} missing: the master did not exit cleanly)")
        return
    found = json.loads(path.read_text())
    sites = found["sites"]
    print(
        f"master loop during the writes: {found['callbacks']} callbacks, "
        f"{found['cpu']:.2f} s CPU; {sum(v[0] for v in sites.values())} over {limit_ms:g} ms:"
    )
    for site, (count, cpu, largest) in sorted(sites.items(), key=lambda kv: -kv[1][1])[:top]:
        print(f"  {count:5d} x  largest {largest * 1000:6.1f} ms  sum {cpu:6.2f} s  {site}")
    heap = found.get("heap") or {}
    print(f"  heap when the writes ended: {heap}")
    start = heap.get("start") or {}
    if start and heap.get("at", 0) > start.get("at", 0):
        minutes = (heap["at"] - start["at"]) / 60
        grown = heap.get("frozen", 0) - start.get("frozen", 0)
        print(f"  frozen objects {grown:+d} over the window ({grown / minutes:+.0f}/min)")
    for cpu, before, after, collected in found.get("sweeps", []):
        print(
            f"  sweep (kernel/heap.py full collection): {cpu * 1000:6.1f} ms CPU, "
            f"frozen {before:d} -> {after:d}, {collected:d} unreachable objects freed"
        )
    for generation, (count, cpu, largest) in sorted(found.get("gc", {}).items()):
        print(
            f"  garbage collections of generation {generation}: {count:5d} x  "
            f"largest {largest * 1000:6.1f} ms  sum {cpu:6.2f} s"
        )


def report_slow_writes(path: Path, writes: list[tuple[float, float]], top: int = 25) -> None:
    """The writes over 50 ms, each split by what it waited on (tests/bench/write_trace.py)."""
    if not path.exists() or not writes:
        return
    timeline = json.loads(path.read_text()).get("timeline", [])
    slow = write_trace.explain(writes, timeline, 0.05)
    print(f"writes over 50 ms: {len(slow)} of {len(writes)}; by their largest part:")
    for text in write_trace.summary(slow):
        print("  " + text)
    for w in sorted(slow, key=lambda w: -w.latency)[:top]:
        print("  " + write_trace.line(w, writes[0][0]))


async def main_async(args: argparse.Namespace) -> None:
    print(mm.machine_line("before"))
    try:
        await run_bench(args)
    finally:
        print(mm.machine_line("after"))


async def run_bench(args: argparse.Namespace) -> None:
    workdir = Path(tempfile.mkdtemp(prefix="pinnace-kube-bench-"))
    metrics_port = free_port()
    proc, grpc_address, api = start_master(workdir, metrics_port, args.profile_master, args.stalls)
    b: Bench | None = None
    try:
        master = psutil.Process(proc.pid)
        timeout = aiohttp.ClientTimeout(total=600)
        async with (
            aiohttp.ClientSession(timeout=timeout) as http,
            grpc.aio.insecure_channel(
                grpc_address, options=[("grpc.max_receive_message_length", 256 * 2**20)]
            ) as channel,
        ):
            stub = cluster_pb2_grpc.ClusterServiceStub(channel)
            b = Bench(master, http, api, f"http://127.0.0.1:{metrics_port}/metrics")
            b.profiling = bool(args.profile_master or args.stalls)
            print(f"pinnace master {grpc_address} (gRPC), {api} (HTTP); plaintext, --no-lb")
            if args.pods:
                await bench_list(b, stub, args.pods, args.lists)
            if args.changes:
                await bench_watch(b, stub, args.changes)
            if args.seconds:
                await bench_writes(
                    b,
                    grpc_address,
                    args.nodes,
                    args.rate,
                    args.seconds,
                    args.idle_seconds,
                    args.node_lists_every,
                )
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        if proc.stdout is not None:
            proc.stdout.close()
        if args.stalls:
            report_stalls(workdir / "stalls.json", args.stalls)
            report_slow_writes(workdir / "stalls.json", b.writes if b is not None else [])
        subprocess.run(["rm", "-rf", str(workdir)], check=False)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--pods", type=int, default=10_000)
    parser.add_argument("--lists", type=int, default=10)
    parser.add_argument("--changes", type=int, default=1_000)
    parser.add_argument("--nodes", type=int, default=1_000)
    parser.add_argument("--rate", type=float, default=20.0)
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument(
        "--profile-master",
        default="",
        metavar="FILE[:wall]",
        help="run the master under yappi (tests/bench/profile_master.py) and save the "
        "profile of the write window to FILE when it stops",
    )
    parser.add_argument(
        "--stalls",
        type=float,
        default=0.0,
        metavar="MS",
        help="list the master's event-loop callbacks that used more than MS milliseconds of "
        "CPU during the writes (tests/bench/debug_master.py)",
    )
    parser.add_argument(
        "--node-lists-every",
        type=float,
        default=0.0,
        metavar="S",
        help="during the writes, also list every node (GET /api/v1/nodes) every S seconds; "
        "with --stalls the list handler's longest hold of the loop shows among the callbacks",
    )
    parser.add_argument(
        "--idle-seconds",
        type=float,
        default=10.0,
        help="heartbeats alone before the writes, for the master's CPU without writes",
    )
    parser.add_argument(
        "--quiet-check",
        action="store_true",
        help="only say how loaded the machine is (load average, the CPU share a spinning "
        "process gets) and exit; every run prints the same before and after",
    )
    parser.add_argument("--hollow-for", default="", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.hollow_for:
        asyncio.run(run_hollow(args.hollow_for, args.nodes))
        return
    if args.quiet_check:
        for _ in range(3):
            print(mm.machine_line("now"))
        return
    asyncio.run(main_async(args))


if __name__ == "__main__":
    main()
