"""Hollow nodes: how much CPU the master spends carrying many agents and pods.

Starts a real master (`--no-lb`, so only the control plane is measured; TLS on
unless `--insecure`), makes a join token through the CLI, then N hollow agents
shared out over `--processes` fleet processes (tests/bench/hollow_fleet.py):
each joins as a real agent does (CA pinned by the token, JoinNode with a CSR,
then its own mTLS connection), registers, holds a real session stream,
heartbeats at the interval the master gives it and reports every assigned pod
Running and ready at once (no containers). Once every agent has its first
heartbeat ack, applies a Deployment of P pods and times apply -> all Running
(the master's own `pinnace_pods{phase="Running"}` on /metrics, polled every
second, that family alone: `?name[]=pinnace_pods`). Then, at steady state
(heartbeats only), over `--window` seconds:

- master CPU: the master process's own user + system CPU time (psutil, from
  /proc) over the window divided by its wall time, in cores; the fleet runs in
  other processes, so this is the master's share alone;
- master RSS at the end of the window;
- heartbeat round trip (agent sends a beat -> its ack arrives) p50 / p99;

then how long after all pods are Running every live agent is back on the cluster's
heartbeat plan (the interval the master plans for this many nodes at its full budget,
master/controllers/heartbeats.py; the apply's burst cuts the master's heartbeat budget and
stretches the agents to up to 40 s, master/controllers/heartbeat_budget.py), watched from
all Running on in the fleets' status lines until `--return-timeout` seconds after it, and the
acks a second over an `--after-window` from then (the fleet back on its plan, or the timeout
passed: then it says it is not back);

and last, node-death detection, `--deaths` agents of each `--death-kinds`, one at
a time: `kill` (the agent's connection closes, as a killed process's does),
`cut` (its connection goes through a relay in its fleet process that stops
passing bytes and keeps the sockets open: a cut cable or a dead machine, found
by the master's keepalive pings; the relay's kernel still acknowledges their TCP
segments, so this is the pings' 2.5 s HTTP/2 answer timeout, as for a SIGSTOPped
agent, not the 2.5 s TCP_USER_TIMEOUT that ends a really cut link, master/server.py)
and `hang` (its event loop is wedged: it stops heartbeating but keeps its connection
and answers pings; its loop watchdog ends its connection once the loop has missed
2.5 s of ticks, agent/watchdog.py, judged in the fleet process by the agent's own
decision) and `stall` (the same wedge unseen by the watchdog, as one holding the GIL:
found by its stretched lease only; not in the default kinds); the time from that
moment until the master reports the node NotReady (polled every 0.1 s through
the API).

    python -m tests.bench.hollow --nodes 5000 --pods 50000 --processes 4

Prints one table and appends one JSON line per figure to tests/bench/results.jsonl
(`--no-record`: none).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

import psutil

from tests.bench.results import Figure, record, table

REPO = Path(__file__).resolve().parents[2]
INSECURE = ["--insecure"]
DEATH_KINDS = ("kill", "cut", "hang")


@dataclass(frozen=True, slots=True)
class HollowResult:
    nodes: int
    pods: int
    join_s: float
    converge_s: float
    # The master's own CPU time (user + system) from apply to all Running.
    converge_cpu_s: float
    cpu_cores: float
    rss_mib: float
    acks_per_s: float
    rtt_p50_ms: float
    rtt_p99_ms: float
    # Seconds from all Running until every live agent ran the cluster's plan (None: not
    # within --return-timeout), the most heartbeats a second the master received over any
    # 5 s meanwhile, and the acks a second over the window after that.
    return_s: float | None
    return_peak_per_s: float
    acks_after_per_s: float
    ready: int
    # Seconds from a node's death to NotReady, by kind (kill, cut, hang).
    detect_s: dict[str, tuple[float, ...]]
    # The fleet processes' CPU time (user + system) from apply to all Running, and the
    # whole machine's busy CPU time meanwhile (every process: the master, the fleet, this
    # bench, the neighbours): is the machine saturated while the master works?
    converge_fleet_cpu_s: float = float("nan")
    converge_machine_cpu_s: float = float("nan")
    # The fleet's CPU share over the steady window, in cores.
    fleet_cores: float = float("nan")


class Fleet:
    """One hollow_fleet process: its latest status line, and commands to it."""

    def __init__(
        self,
        master: str,
        token: str,
        first: int,
        count: int,
        per_channel: int,
        proxied: tuple[str, ...] = (),
        nice: int = 0,
    ) -> None:
        # `nice`: the fleet stands in for agents on other machines; at a lower CPU priority it
        # takes what the master leaves instead of competing with it for the two cores.
        argv = ["nice", "-n", str(nice)] if nice else []
        argv += [sys.executable, "-m", "tests.bench.hollow_fleet", "--master", master]
        argv += ["--first", str(first), "--count", str(count), "--proxied", ",".join(proxied)]
        argv += ["--token", token] if token else ["--agents-per-channel", str(per_channel)]
        self.proc = subprocess.Popen(
            argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, cwd=REPO, text=True
        )
        self.status: dict[str, object] = {}
        self.replies: asyncio.Queue[dict[str, object]] = asyncio.Queue()
        self.names = [f"hollow-{i:05d}" for i in range(first, first + count)]

    async def pump(self) -> None:
        """Read the process's lines: status lines update `status`, the rest are replies."""
        out = self.proc.stdout
        if out is None:
            return
        while True:
            line = await asyncio.to_thread(out.readline)
            if not line:
                return
            doc = json.loads(line)
            if "joined" in doc:
                self.status = doc
            else:
                await self.replies.put(doc)

    async def ask(self, command: str) -> dict[str, object]:
        stdin = self.proc.stdin
        if stdin is None:
            raise RuntimeError("fleet process has no stdin")
        stdin.write(command + "\n")
        stdin.flush()
        return await asyncio.wait_for(self.replies.get(), 60)

    def joined(self) -> int:
        value = self.status.get("joined", 0)
        return value if isinstance(value, int) else 0

    def stop(self) -> None:
        """End the process by its PID (stdin `stop`, then SIGTERM, then SIGKILL)."""
        try:
            if self.proc.stdin is not None:
                self.proc.stdin.write("stop\n")
                self.proc.stdin.flush()
        except (BrokenPipeError, ValueError):
            pass
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def deployments(pods: int) -> str:
    """The manifest applied: `pods` replicas in Deployments of at most MAX_REPLICAS each
    (a Deployment takes at most 10,000: 50,000 pods are five of them)."""
    from master.manifest.deployment import MAX_REPLICAS

    docs = []
    for i, first in enumerate(range(0, pods, MAX_REPLICAS)):
        replicas = min(MAX_REPLICAS, pods - first)
        docs.append(
            f"apiVersion: apps/v1\nkind: Deployment\nmetadata: {{name: hollow-{i}}}\n"
            f"spec:\n  replicas: {replicas}\n  selector: {{matchLabels: {{app: hollow-{i}}}}}\n"
            f"  template:\n    metadata: {{labels: {{app: hollow-{i}}}}}\n    spec:\n"
            "      containers: [{name: c, image: nginx:latest, ports: [{containerPort: 80}]}]\n"
        )
    return "---\n".join(docs)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def cli(address: str, env: dict[str, str], *args: str) -> str:
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "master.cli.main",
            *INSECURE[: bool(env.get("HOLLOW_INSECURE"))],
            "--master",
            address,
            *args,
        ],
        capture_output=True,
        text=True,
        check=False,
        cwd=REPO,
        env=env,
    )
    if out.returncode != 0:
        # Say why (a CLI that gave up on a busy master said nothing in the traceback).
        raise RuntimeError(f"pinnace {' '.join(args)} failed: {out.stderr.strip()}")
    return out.stdout


# The one family the convergence poll reads: prometheus_client serves only the named
# families (`name[]`), so each poll costs the master its pod count, not a whole scrape
# of every series (per node, per method) it renders for Prometheus.
RUNNING_QUERY = "?name[]=pinnace_pods&name[]=pinnace_node_heartbeat_read_backlog_seconds"


def running_pods(metrics_url: str, backlog: list[float] | None = None) -> int:
    """Pods Running as the master counts them (its own gauge, polled once a second); the
    master's read backlog as its node lifecycle excuses it, appended to `backlog` (a master
    without the gauge appends nothing)."""
    running = 0
    with urllib.request.urlopen(metrics_url + RUNNING_QUERY, timeout=10) as reply:
        for line in reply.read().decode().splitlines():
            if line.startswith('pinnace_pods{phase="Running"}'):
                running = int(float(line.split()[-1]))
            elif backlog is not None and line.startswith(
                "pinnace_node_heartbeat_read_backlog_seconds "
            ):
                backlog.append(float(line.split()[-1]))
    return running


LIFECYCLE_QUERY = "?" + "&".join(
    f"name[]={n}"
    for n in (
        "pinnace_scheduler_schedule_attempts_total",
        "pinnace_node_condition_transitions_total",
        "pinnace_node_pods_evicted_total",
    )
)


def lifecycle_counts(metrics_url: str) -> dict[str, float]:
    """What the node lifecycle did so far, from the master's own counters: pods placed
    (every tree has it: placements beyond the apply's pods are replacements), NotReady
    transitions and pods evicted (a master without these families leaves them out)."""
    found: dict[str, float] = {}
    wanted = {
        'pinnace_scheduler_schedule_attempts_total{result="scheduled"}': "placed",
        'pinnace_node_condition_transitions_total{condition="NotReady"}': "not_ready",
        "pinnace_node_pods_evicted_total": "evicted",
    }
    with urllib.request.urlopen(metrics_url + LIFECYCLE_QUERY, timeout=10) as reply:
        for line in reply.read().decode().splitlines():
            name, _, value = line.rpartition(" ")
            if name in wanted:
                found[wanted[name]] = float(value)
    if "evicted" in found:
        found.setdefault("not_ready", 0.0)  # a labelled counter shows no line until used
    return found


STORE_QUERY = "?" + "&".join(
    f"name[]=pinnace_store_write_{n}"
    for n in ("batch_size_count", "batch_size_sum", "duration_seconds_sum")
)


def store_writes(metrics_url: str) -> tuple[float, float, float]:
    """The master's store transactions, rows (puts and deletes) and seconds spent writing so
    far (its own /metrics): the writes a pod costs, from two readings."""
    found = dict.fromkeys(
        (
            "pinnace_store_write_batch_size_count",
            "pinnace_store_write_batch_size_sum",
            "pinnace_store_write_duration_seconds_sum",
        ),
        0.0,
    )
    with urllib.request.urlopen(metrics_url + STORE_QUERY, timeout=10) as reply:
        for line in reply.read().decode().splitlines():
            name = line.split(" ", 1)[0]
            if name in found:
                found[name] = float(line.split()[-1])
    transactions, rows, seconds = found.values()
    return transactions, rows, seconds


def node_ready(client: object, name: str) -> bool | None:
    from master.cli.client import MasterClient
    from protos import cluster_pb2

    if not isinstance(client, MasterClient):
        return None
    reply = client.call(
        client.stub.GetObjects, cluster_pb2.GetObjectsRequest(kind="Node", name=name)
    )
    for obj in reply.objects:
        for c in json.loads(obj.json)["status"]["conditions"]:
            if c["type"] == "Ready":
                return bool(c["status"] == "True")
    return None


# The master's heartbeat budget (master/metrics/cluster.py), printed as the fleet returns
# (a master without the family prints none).
BUDGET_QUERY = "?name[]=pinnace_node_heartbeat_budget_per_second"


def heartbeat_budget(metrics_url: str) -> float | None:
    """The heartbeats a second the master plans for now, if it says."""
    with urllib.request.urlopen(metrics_url + BUDGET_QUERY, timeout=10) as reply:
        for line in reply.read().decode().splitlines():
            if line.startswith("pinnace_node_heartbeat_budget_per_second "):
                return float(line.split()[-1])
    return None


BEATS_QUERY = "?name[]=pinnace_node_heartbeats_total"


def heartbeats_received(metrics_url: str) -> float | None:
    """The heartbeats the master has received (its own counter)."""
    with urllib.request.urlopen(metrics_url + BEATS_QUERY, timeout=10) as reply:
        for line in reply.read().decode().splitlines():
            if line.startswith("pinnace_node_heartbeats_total "):
                return float(line.split()[-1])
    return None


SHRINKS_QUERY = "?name[]=pinnace_node_heartbeat_shrinks_total"


def shrinks_judged(metrics_url: str) -> dict[str, float]:
    """The shrinks of session plans the master admitted and deferred so far, by result (and
    why deferred); empty from a master without the family."""
    found: dict[str, float] = {}
    with urllib.request.urlopen(metrics_url + SHRINKS_QUERY, timeout=10) as reply:
        for line in reply.read().decode().splitlines():
            if line.startswith("pinnace_node_heartbeat_shrinks_total{"):
                labels, value = line.rsplit(" ", 1)
                result = labels.split('result="')[1].split('"')[0]
                reason = labels.split('reason="')[1].split('"')[0] if 'reason="' in labels else ""
                found[f"{result}:{reason}" if reason else result] = float(value)
    return found


def peak_rate(samples: list[tuple[float, float]], span: float = 5.0) -> float:
    """The most a counter sampled as (time, value) grew a second over any `span` seconds
    or more between two samples (nan with too few samples)."""
    best = float("nan")
    j = 0
    for i, (t, v) in enumerate(samples):
        while j < i and t - samples[j + 1][0] >= span:
            j += 1
        t0, v0 = samples[j]
        if t - t0 >= span:
            rate = (v - v0) / (t - t0)
            best = rate if best != best else max(best, rate)
    return best


def cluster_interval(nodes: int, master_args: tuple[str, ...]) -> float:
    """The heartbeat interval the master plans for `nodes` at its full budget (its flags'
    defaults unless `master_args` set them)."""
    from master.controllers.heartbeats import heartbeat_plan

    parser = argparse.ArgumentParser(add_help=False)
    parser.add_argument("--heartbeat-interval", type=float, default=1.0)
    parser.add_argument("--lease-seconds", type=float, default=3.0)
    parser.add_argument("--max-heartbeats-per-second", type=float, default=250.0)
    known, _ = parser.parse_known_args(list(master_args))
    plan = heartbeat_plan(
        nodes, known.heartbeat_interval, known.lease_seconds, known.max_heartbeats_per_second
    )
    return plan.interval


# The return is said for this share of the fleet too: a few agents left on a plan a few
# percent off the cluster's (not worth a shrink) kept "all" from ever being said.
MOST = 0.9


def on_plan(plans: Counter[str], interval: float, share: float = 1.0) -> bool:
    """Whether every live agent counted in `plans` (interval "%g" -> agents) runs `interval`
    (`share`: at least that share of them)."""
    total = sum(plans.values())
    on = sum(n for k, n in plans.items() if abs(float(k) - interval) < 0.05)
    return total > 0 and on >= share * total


# The fleet is back once it has stayed on the cluster's plan this long: longer than the
# longest plan (40 s), so a cut that comes after all Running (the apply's status writes)
# and stretches agents again shows before it counts. Without it, a fleet still on its plan
# at the moment of all Running was "back" at 0 s and stretched to 40 s right after.
RETURN_HOLD = 45.0


class Return:
    """When the fleet (all of it, and `MOST` of it) last came onto the cluster's plan."""

    def __init__(self) -> None:
        self.all_since: float | None = None
        self.most_since: float | None = None

    def look(self, now: float, plans: Counter[str], interval: float) -> None:
        on_all, on_most = on_plan(plans, interval), on_plan(plans, interval, MOST)
        self.all_since = (self.all_since or now) if on_all else None
        self.most_since = (self.most_since or now) if on_most else None

    def held(self, now: float, hold: float = RETURN_HOLD) -> bool:
        return self.all_since is not None and now - self.all_since >= hold


async def watch_return(
    fleets: list[Fleet],
    interval: float,
    since: float,
    timeout: float,
    metrics_url: str,
    beats: list[tuple[float, float]] | None = None,
) -> float | None:
    """Seconds from `since` (monotonic: all Running) until the fleets' status lines say every
    live agent runs `interval`, for good (`RETURN_HOLD`); None if not within `timeout` of
    `since`. Prints the plans (and the master's budget, where it says) every 10 s meanwhile,
    and when `MOST` of the fleet came onto the plan for good; `beats` gets the master's
    heartbeat counter each second, (time, count)."""
    last_print = 0.0
    back = Return()
    while True:
        now = time.monotonic()
        if beats is not None:
            with contextlib.suppress(OSError):
                count = await asyncio.to_thread(heartbeats_received, metrics_url)
                if count is not None:
                    beats.append((time.monotonic(), count))
        plans: Counter[str] = Counter()
        for f in fleets:
            plans.update(dict(f.status.get("plans", {})))  # type: ignore[call-overload]
        back.look(now, plans, interval)
        if back.held(now) or now - since > timeout + RETURN_HOLD:
            if back.most_since is not None:
                print(
                    f"  {MOST:.0%} of the fleet on the cluster's plan from "
                    f"{back.most_since - since:.1f}s after all Running"
                )
            if back.all_since is None or back.all_since - since > timeout:
                return None
            return back.all_since - since
        if now - last_print >= 10:
            last_print = now
            try:
                budget = await asyncio.to_thread(heartbeat_budget, metrics_url)
                judged = await asyncio.to_thread(shrinks_judged, metrics_url)
            except OSError:
                budget, judged = None, {}
            said = f", budget {budget:.0f}/s" if budget is not None else ""
            if judged:
                said += f", shrinks {', '.join(f'{k} {v:.0f}' for k, v in sorted(judged.items()))}"
            if beats and len(beats) >= 2:
                recent = [b for b in beats if b[0] >= beats[-1][0] - 10]
                if len(recent) >= 2 and recent[-1][0] > recent[0][0]:
                    rate = (recent[-1][1] - recent[0][1]) / (recent[-1][0] - recent[0][0])
                    said += f", beats {rate:.0f}/s over the last 10 s"
            ranked = sorted(plans.items(), key=lambda kv: -kv[1])[:4]
            print(
                f"  {now - since:5.0f}s after all Running: plans (s: agents) {dict(ranked)}{said}",
                flush=True,
            )
        await asyncio.sleep(1.0)


async def _hang_timeline(fleet: Fleet, name: str, at: float, took: float, poll: float) -> None:
    """Where a hang's detection went: the agent's watchdog (judged in its fleet process)
    ending its connection, then the master (the stream's end read, the session grace, a
    node pass) and the bench's own poll of the node (its slowest call said)."""
    closed = None
    deadline = time.monotonic() + 3.0  # the fleet's status line comes every second
    while closed is None and time.monotonic() < deadline:
        closed = dict(fleet.status.get("closed", {})).get(name)  # type: ignore[call-overload]
        if closed is None:
            await asyncio.sleep(0.2)
    if closed is None:
        print(f"  {name}: the fleet did not say when its watchdog closed the connection")
        return
    began, ended = float(closed[0]), float(closed[1])
    print(
        f"  {name}: watchdog began closing at +{began - at:.2f}s (closed +{ended - at:.2f}s), "
        f"NotReady seen {at + took - ended:.2f}s after the close "
        f"(the bench's slowest poll of the node {poll:.2f}s)",
        flush=True,
    )


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def main_async(
    nodes: int,
    pods: int,
    window: float,
    per_channel: int = 10,
    source: Path | None = None,
    timeout: float = 600.0,
    processes: int = 2,
    insecure: bool = False,
    deaths: int = 0,
    master_args: tuple[str, ...] = (),
    profile: str = "",
    profile_window: bool = False,
    during_window: Callable[[str, float], Awaitable[None]] | None = None,
    death_kinds: tuple[str, ...] = ("kill", "cut", "hang"),
    profile_joins: bool = False,
    stalls_ms: float = 0.0,
    stalls_out: str = "",
    stop_times: list[float] | None = None,
    memory_probe: str = "",
    return_timeout: float | None = None,
    after_window: float = 20.0,
    trace: str = "",
    fleet_nice: int = 0,
) -> HollowResult | None:
    """One run; `during_window(address, seconds)` runs beside the steady window (another
    bench's probe, e.g. store_compare.py's writes); `return_timeout` None: no watch for the
    fleet's return to the cluster's plan (nor the window after it)."""
    data = tempfile.mkdtemp(prefix="pinnace-hollow-")
    metrics_port = free_port()
    argv = [sys.executable, "-m", "master.cli.main"]
    if profile:
        out, _, clock = profile.partition(":")
        argv = [sys.executable, "-m", "tests.bench.profile_master", out, clock or "cpu"]
    elif stalls_ms:
        # Every loop callback over stalls_ms of CPU, from the start (tests/bench/debug_master.py).
        argv = [sys.executable, "-m", "tests.bench.debug_master", stalls_out, f"{stalls_ms:g}"]
    elif trace:
        # What it decided, bound, sent and heard, and when (tests/bench/trace_master.py).
        argv = [sys.executable, "-m", "tests.bench.trace_master", trace]
    elif memory_probe:
        # Where its memory is, after the joins, all Running, the window (memory_probe.py).
        argv = [sys.executable, "-m", "tests.bench.memory_probe", memory_probe]
    argv += ["master", "--listen", "127.0.0.1:0"]
    argv += ["--api-listen", "127.0.0.1:0", "--data-dir", data, "--no-lb"]
    argv += ["--metrics-listen", f"127.0.0.1:{metrics_port}", "--log-level", "WARNING"]
    argv += ["--insecure"] if insecure else []
    master = subprocess.Popen([*argv, *master_args], stdout=subprocess.PIPE, cwd=source or REPO)
    fleets: list[Fleet] = []
    pumps: list[asyncio.Task[None]] = []
    client = None
    returning: asyncio.Task[float | None] | None = None
    try:
        if master.stdout is None:
            raise RuntimeError("the master has no stdout")
        address = master.stdout.readline().decode().strip().rsplit(" ", 1)[-1]
        proc = psutil.Process(master.pid)
        env = dict(os.environ, PINNACE_CONFIG=str(Path(data) / "pinnace.conf"))
        if insecure:
            env["HOLLOW_INSECURE"] = "1"
        token = "" if insecure else cli(address, env, "token", "create").strip()
        print(f"master pid {master.pid} at {address} ({'insecure' if insecure else 'TLS'})")
        metrics_url = f"http://127.0.0.1:{metrics_port}/metrics"
        share = -(-nodes // processes)
        firsts = list(range(0, nodes, share))
        victims = death_victims(firsts, share, nodes, deaths, death_kinds)
        t0 = time.monotonic()
        for i, first in enumerate(firsts):
            count = min(share, nodes - first)
            cuts = tuple(name for kind, f, name in victims if kind == "cut" and f == i)
            fleets.append(Fleet(address, token, first, count, per_channel, cuts, fleet_nice))
        pumps = [asyncio.create_task(f.pump()) for f in fleets]
        # Apply to a cluster whose nodes are all in: a join storm and a big apply at once
        # measured the storm more than the apply.
        last_print = 0.0
        while (joined := sum(f.joined() for f in fleets)) < nodes:
            now = time.monotonic()
            if now - t0 > timeout:
                print(f"only {joined} of {nodes} hollow agents joined in {timeout:.0f}s")
                for f in fleets:
                    print(f"  fleet {f.proc.pid}: {f.status}")
                return None
            if now - last_print >= 10:
                last_print = now
                fleet_cpu = fleet_cpu_s(fleets)
                master_cpu = sum(proc.cpu_times()[:2])
                failures: Counter[str] = Counter()
                lost: Counter[str] = Counter()
                for f in fleets:
                    failures.update(dict(f.status.get("join_failures", {})))  # type: ignore[call-overload]
                    lost.update(dict(f.status.get("reconnects", {})))  # type: ignore[call-overload]
                print(
                    f"  {now - t0:5.0f}s: {joined} joined; CPU s so far: master "
                    f"{master_cpu:.0f}, fleet {fleet_cpu:.0f}; failed join attempts "
                    f"{dict(failures)}; sessions lost {dict(lost)}",
                    flush=True,
                )
            await asyncio.sleep(0.2)
        join_s = time.monotonic() - t0
        print(f"{nodes} hollow agents joined (first heartbeat ack) in {join_s:.1f}s", flush=True)
        manifest = Path(data) / "deploy.yaml"
        manifest.write_text(deployments(pods))
        if profile and not profile_window and not profile_joins:
            os.kill(master.pid, signal.SIGUSR1)  # profile from the apply on
        if memory_probe:
            await _probe(master.pid, signal.SIGUSR1, memory_probe, 1)
        if trace:
            os.kill(master.pid, signal.SIGUSR1)  # the timeline starts at the apply
        t1, apply_cpu0 = time.monotonic(), proc.cpu_times()
        fleet_cpu0, machine_cpu0 = fleet_cpu_s(fleets), machine_busy_s()
        writes0 = await asyncio.to_thread(store_writes, metrics_url)
        counts0 = await asyncio.to_thread(lifecycle_counts, metrics_url)
        threads0, waits0 = thread_cpu_s(master.pid), run_queue_waits_s(master.pid)
        messages0 = fleet_messages(fleets)
        await asyncio.to_thread(cli, address, env, "apply", "-f", str(manifest))
        backlogs: list[float] = []
        while (running := await asyncio.to_thread(running_pods, metrics_url, backlogs)) < pods:
            if time.monotonic() - t1 > timeout:
                print(f"not all {pods} pods Running after {timeout:.0f}s ({running}): no converge")
                return None
            await asyncio.sleep(1.0)
        converge = time.monotonic() - t1
        apply_cpu1 = proc.cpu_times()
        converge_cpu = sum(apply_cpu1[:2]) - sum(apply_cpu0[:2])
        converge_fleet = fleet_cpu_s(fleets) - fleet_cpu0
        converge_machine = machine_busy_s() - machine_cpu0
        threads1, waits1 = thread_cpu_s(master.pid), run_queue_waits_s(master.pid)
        # The fleets' status lines are up to a second old: counted at all Running, not exact.
        messages = fleet_messages(fleets) - messages0
        print(
            "messages from the apply to all Running (fleets' last status lines): "
            + ", ".join(f"{k} {v} ({v / pods:.2f} a pod)" for k, v in sorted(messages.items())),
            flush=True,
        )
        print(
            f"{pods} pods Running on {nodes} hollow nodes in {converge:.1f}s; the master used "
            f"{converge_cpu:.1f} CPU-seconds meanwhile, the fleet {converge_fleet:.1f}, the "
            f"whole machine {converge_machine:.1f} of {converge * (os.cpu_count() or 1):.1f}",
            flush=True,
        )
        # From all Running on: when is the fleet back on the cluster's plan?
        target = cluster_interval(nodes, master_args)
        beats: list[tuple[float, float]] = []
        returning = (
            asyncio.create_task(
                watch_return(fleets, target, t1 + converge, return_timeout, metrics_url, beats)
            )
            if return_timeout is not None
            else None
        )
        await asyncio.sleep(5)  # let the status flushes settle
        print(f"the master's threads' CPU s meanwhile: {thread_shares(threads0, threads1)}")
        loop = "main (event loop)"
        print(
            f"waiting for a CPU while runnable meanwhile (run queue): the master's event loop "
            f"{waits1.get(loop, 0.0) - waits0.get(loop, 0.0):.1f} s, all its threads "
            f"{sum(waits1.values()) - sum(waits0.get(t, 0.0) for t in waits1):.1f} s",
            flush=True,
        )
        # What the node lifecycle did from the apply to 5 s after all Running.
        counts1 = await asyncio.to_thread(lifecycle_counts, metrics_url)
        moved = {k: counts1[k] - counts0.get(k, 0.0) for k in counts1}
        print(
            f"node lifecycle from the apply to 5 s after all Running: pods placed "
            f"{moved.get('placed', float('nan')):.0f} (beyond the apply's "
            f"{moved.get('placed', float('nan')) - pods:.0f}), NotReady transitions "
            f"{moved.get('not_ready', float('nan')):.0f}, pods evicted "
            f"{moved.get('evicted', float('nan')):.0f}; read backlog excused at most "
            f"{max(backlogs, default=float('nan')):.1f} s",
            flush=True,
        )
        if trace:
            os.kill(master.pid, signal.SIGUSR2)  # and ends 5 s after all Running
        # All Running is read from memory: the last statuses are written after it.
        writes1 = await asyncio.to_thread(store_writes, metrics_url)
        txns, rows, writing = (b - a for a, b in zip(writes0, writes1, strict=True))
        print(
            f"store writes from the apply to 5 s after all Running: {txns:.0f} transactions, "
            f"{rows:.0f} rows ({rows / pods:.2f} a pod), {writing:.1f} s writing",
            flush=True,
        )
        if memory_probe:
            await _probe(master.pid, signal.SIGUSR1, memory_probe, 2)
        for f in fleets:
            await f.ask("reset")
        if profile and profile_window:
            os.kill(master.pid, signal.SIGUSR1)  # profile the window on (profile_master.py)
        cpu0, w0, fleet_w0 = proc.cpu_times(), time.monotonic(), fleet_cpu_s(fleets)
        steady0 = thread_cpu_s(master.pid)
        if during_window is not None:
            await asyncio.gather(asyncio.sleep(window), during_window(address, window))
        else:
            await asyncio.sleep(window)
        cpu1, w1, fleet_w1 = proc.cpu_times(), time.monotonic(), fleet_cpu_s(fleets)
        print(
            f"the master's threads' CPU s over the window: "
            f"{thread_shares(steady0, thread_cpu_s(master.pid))}",
            flush=True,
        )
        reports = [await f.ask("report") for f in fleets]
        used = (cpu1.user - cpu0.user + cpu1.system - cpu0.system) / (w1 - w0)
        fleet_used = (fleet_w1 - fleet_w0) / (w1 - w0)
        rss = proc.memory_info().rss / 2**20
        if memory_probe:
            await _probe(master.pid, signal.SIGUSR2, memory_probe, 3)
        rtts = [float(r) for rep in reports for r in rep["rtt_ms"]]  # type: ignore[attr-defined]
        # Each process counted from its reset to its report: its own rate, summed.
        acks_per_s = sum(
            int(rep["acks"]) / float(rep["seconds"])  # type: ignore[call-overload, arg-type]
            for rep in reports
        )
        silent: Counter[str] = Counter()
        for rep in reports:
            silent.update(dict(rep["without_ack"]))  # type: ignore[call-overload]
        if silent:
            print(f"agents without an ack in the window, by stage: {dict(silent)}")
        intervals: Counter[str] = Counter()
        for rep in reports:
            intervals.update(dict(rep.get("intervals", {})))  # type: ignore[call-overload]
        if intervals:
            ranked = sorted(intervals.items(), key=lambda kv: float(kv[0]))
            print(f"heartbeat intervals after the window (s: agents): {dict(ranked)}")
        ended: Counter[str] = Counter()
        for f in fleets:
            ended.update(dict(f.status.get("ended", {})))  # type: ignore[call-overload]
        if ended:
            print(f"agent sessions ended for good (killed, cut or hung): {dict(ended)}")
        reconnects: Counter[str] = Counter()
        for f in fleets:
            reconnects.update(dict(f.status.get("reconnects", {})))  # type: ignore[call-overload]
        print(f"sessions lost and registered again, by why they ended: {dict(reconnects)}")
        back, acks_after = None, float("nan")
        if returning is not None and return_timeout is not None:
            back, acks_after = await _return_and_after(
                fleets, returning, target, return_timeout, after_window
            )
            print(
                f"heartbeats the master received until then, most over 5 s: "
                f"{peak_rate(beats):.0f}/s",
                flush=True,
            )
        from master.cli import config
        from master.cli.client import MasterClient

        os.environ.update(env)
        config.select(None, insecure)
        client = MasterClient(address)
        detections: dict[str, list[float]] = {}
        verbs = {"kill": "kill", "cut": "cut", "hang": "freeze", "stall": "stall"}
        for kind, index, name in victims:
            fleet = fleets[index]
            if insecure and kind not in ("hang", "stall"):
                continue  # plaintext agents share connections: only a hang is theirs alone
            died = await fleet.ask(f"{verbs[kind]} {name}")
            at = float(str(died["at"]))
            slowest_poll = 0.0
            while True:
                asked = time.time()
                ready = await asyncio.to_thread(node_ready, client, name)
                slowest_poll = max(slowest_poll, time.time() - asked)
                if not ready:
                    break
                if time.time() - at > 60:
                    print(f"node {name} still Ready 60 s after it died ({kind})")
                    break
                await asyncio.sleep(0.1)
            took = time.time() - at
            detections.setdefault(kind, []).append(took)
            plan = (
                f" (beating every {float(str(died['interval'])):g}s)" if "interval" in died else ""
            )
            print(f"node {name} {kind} -> NotReady in {took:.2f}s{plan}", flush=True)
            if kind == "hang":
                await _hang_timeline(fleet, name, at, took, slowest_poll)
        result = HollowResult(
            nodes,
            pods,
            join_s,
            converge,
            converge_cpu,
            used,
            rss,
            acks_per_s,
            percentile(rtts, 0.5),
            percentile(rtts, 0.99),
            back,
            peak_rate(beats),
            acks_after,
            nodes - sum(len(d) for d in detections.values()),
            {kind: tuple(d) for kind, d in detections.items()},
            converge_fleet,
            converge_machine,
            fleet_used,
        )
        return result
    finally:
        if returning is not None:
            returning.cancel()
        if client is not None:
            client.close()
        for f in fleets:
            f.stop()
        for p in pumps:
            p.cancel()
        if stalls_ms and master.poll() is None:
            os.kill(master.pid, signal.SIGUSR2)  # the stall record ends before the stop
        asked = time.monotonic()
        master.terminate()
        try:
            master.wait(timeout=60)
            took = time.monotonic() - asked
            print(f"the master exited {took:.2f}s after SIGTERM", flush=True)
            if stop_times is not None:
                stop_times.append(took)
        except subprocess.TimeoutExpired:
            print("the master did not stop within 60 s of SIGTERM: killed", file=sys.stderr)
            master.kill()
            master.wait()
        subprocess.run(["rm", "-rf", data], check=False)


def fleet_messages(fleets: list[Fleet]) -> Counter[str]:
    """The assignment messages the fleets' agents received and the status batches they sent,
    as of their latest status lines (tests/bench/hollow_fleet.py MESSAGES)."""
    total: Counter[str] = Counter()
    for f in fleets:
        total.update(dict(f.status.get("messages", {})))  # type: ignore[call-overload]
    return total


def fleet_cpu_s(fleets: list[Fleet]) -> float:
    """The fleet processes' user + system CPU seconds so far (their own, from /proc)."""
    return sum(sum(psutil.Process(f.proc.pid).cpu_times()[:2]) for f in fleets)


def thread_cpu_s(pid: int) -> dict[str, float]:
    """A process's CPU seconds so far by thread (/proc: its name and id), to tell the event
    loop from the store's writer and gRPC's threads."""
    found: dict[str, float] = {}
    tick = os.sysconf("SC_CLK_TCK")
    for task in Path(f"/proc/{pid}/task").iterdir():
        with contextlib.suppress(OSError):
            name = (task / "comm").read_text().strip()
            fields = (task / "stat").read_text().rsplit(")", 1)[1].split()
            label = "main (event loop)" if task.name == str(pid) else f"{name}:{task.name}"
            found[label] = (int(fields[11]) + int(fields[12])) / tick
    return found


def run_queue_waits_s(pid: int) -> dict[str, float]:
    """A process's seconds so far waiting for a CPU while runnable, by thread (/proc's
    schedstat): time its threads could have run but the machine ran something else."""
    found: dict[str, float] = {}
    for task in Path(f"/proc/{pid}/task").iterdir():
        with contextlib.suppress(OSError, ValueError, IndexError):
            label = "main (event loop)" if task.name == str(pid) else task.name
            found[label] = int((task / "schedstat").read_text().split()[1]) / 1e9
    return found


def thread_shares(before: dict[str, float], after: dict[str, float], top: int = 6) -> str:
    """The threads that used the most CPU between two readings, seconds each, and the
    seconds of all threads of each name (gRPC's event_engine threads are many)."""
    used = {t: s - before.get(t, 0.0) for t, s in after.items()}
    ranked = sorted(used.items(), key=lambda kv: -kv[1])[:top]
    named: dict[str, float] = {}
    counts: Counter[str] = Counter()
    for t, s in used.items():
        named[t.split(":")[0]] = named.get(t.split(":")[0], 0.0) + s
        counts[t.split(":")[0]] += 1
    by_name = ", ".join(
        f"{n} ({counts[n]}) {s:.1f}" for n, s in sorted(named.items(), key=lambda kv: -kv[1])
    )
    return ", ".join(f"{t} {s:.1f}" for t, s in ranked) + f"; by name: {by_name}"


def machine_busy_s() -> float:
    """The machine's busy CPU seconds so far, all cores (/proc/stat less idle and iowait)."""
    t = psutil.cpu_times()
    guests = getattr(t, "guest", 0.0) + getattr(t, "guest_nice", 0.0)  # counted in user
    return float(sum(t) - t.idle - getattr(t, "iowait", 0.0) - guests)


async def _return_and_after(
    fleets: list[Fleet],
    returning: asyncio.Task[float | None],
    target: float,
    return_timeout: float,
    after_window: float,
) -> tuple[float | None, float]:
    """Waits for the return watch, says what it found, then counts the acks a second over
    `after_window`."""
    back = await returning
    if back is None:
        print(
            f"the fleet is not back on the cluster's plan ({target:g}s) within "
            f"{return_timeout:g}s of all Running"
        )
    else:
        print(
            f"the fleet is back on the cluster's plan ({target:g}s) {back:.1f}s after all Running"
        )
    for f in fleets:
        await f.ask("reset")
    await asyncio.sleep(after_window)
    after = [await f.ask("report") for f in fleets]
    acks_after = sum(
        int(rep["acks"]) / float(rep["seconds"])  # type: ignore[call-overload, arg-type]
        for rep in after
    )
    print(
        f"heartbeat acks over {after_window:g}s from then ({RETURN_HOLD:g}s after it came "
        f"back): {acks_after:.0f}/s",
        flush=True,
    )
    return back, acks_after


def figures(
    r: HollowResult, window: float, insecure: bool, return_timeout: float = 240.0
) -> list[Figure]:
    tag = f"hollow {r.nodes}/{r.pods}{' insecure' if insecure else ''}"
    out = [
        Figure(f"{tag} join (all first acks)", r.join_s, "s"),
        Figure(f"{tag} apply -> all Running", r.converge_s, "s"),
        Figure(f"{tag} master CPU time, apply -> all Running", r.converge_cpu_s, "s"),
        Figure(f"{tag} master CPU steady", r.cpu_cores, "cores", f"{window:g} s window"),
        Figure(f"{tag} fleet CPU time, apply -> all Running", r.converge_fleet_cpu_s, "s"),
        Figure(
            f"{tag} machine's busy CPU time, apply -> all Running",
            r.converge_machine_cpu_s,
            "s",
            f"of {os.cpu_count() or 1} cores",
        ),
        Figure(f"{tag} fleet CPU steady", r.fleet_cores, "cores", f"{window:g} s window"),
        Figure(f"{tag} master RSS", r.rss_mib, "MiB"),
        Figure(f"{tag} heartbeat acks", r.acks_per_s, "1/s"),
        Figure(f"{tag} heartbeat round trip p50", r.rtt_p50_ms, "ms"),
        Figure(f"{tag} heartbeat round trip p99", r.rtt_p99_ms, "ms"),
        Figure(
            f"{tag} all Running -> fleet on the cluster's plan",
            r.return_s if r.return_s is not None else float("nan"),
            "s",
            "" if r.return_s is not None else f"not within {return_timeout:g} s",
        ),
        Figure(
            f"{tag} heartbeats received until the return, most over 5 s",
            r.return_peak_per_s,
            "1/s",
        ),
        Figure(f"{tag} heartbeat acks after the return", r.acks_after_per_s, "1/s"),
    ]
    names = {
        "hang": "silent node",
        "kill": "killed agent",
        "cut": "cut-off node",
        "stall": "stalled node (watchdog blind)",
    }
    for kind, times in r.detect_s.items():
        out.append(
            Figure(
                f"{tag} {names[kind]} -> NotReady",
                statistics.median(times),
                "s",
                f"median of {len(times)}, worst {max(times):.2f}",
            )
        )
    return out


async def _probe(pid: int, sig: int, out: str, rows: int) -> None:
    """Signal tests/bench/memory_probe.py in the master and wait for its `rows`th line."""
    os.kill(pid, sig)
    path = Path(f"{out}.jsonl")
    deadline = time.monotonic() + 300
    while not path.exists() or len(path.read_text().splitlines()) < rows:
        if time.monotonic() > deadline:
            raise RuntimeError(f"the memory probe wrote no line {rows} in 300 s")
        await asyncio.sleep(0.5)
    row = json.loads(path.read_text().splitlines()[rows - 1])
    print(f"memory probe {rows}: RSS {row['rss'] / 2**20:.0f} MiB", flush=True)


def death_victims(
    firsts: list[int], share: int, nodes: int, deaths: int, kinds: tuple[str, ...]
) -> list[tuple[str, int, str]]:
    """(kind, fleet index, node name) of each node to kill, cut or hang, in turn over the
    fleets, from the middle of each fleet's names (joined long before, not the last)."""
    out: list[tuple[str, int, str]] = []
    for k in range(deaths * len(kinds)):
        f = k % len(firsts)
        count = min(share, nodes - firsts[f])
        index = firsts[f] + (count // 2 + k // len(firsts)) % count
        out.append((kinds[k // deaths], f, f"hollow-{index:05d}"))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nodes", type=int, default=1000)
    parser.add_argument("--pods", type=int, default=10000)
    parser.add_argument("--window", type=float, default=30.0)
    parser.add_argument("--processes", type=int, default=2, help="hollow fleet processes")
    parser.add_argument(
        "--insecure", action="store_true", help="plaintext master, no join (TLS is the default)"
    )
    parser.add_argument(
        "--deaths", type=int, default=3, help="dead nodes of each kind to time, one by one"
    )
    parser.add_argument(
        "--death-kinds",
        default=",".join(DEATH_KINDS),
        help="kill (connection closed), cut (relay stops passing bytes), hang (loop wedged, "
        "connection kept, ended by its watchdog), stall (wedged, unseen by the watchdog: the "
        "lease finds it); comma-separated",
    )
    parser.add_argument(
        "--source",
        type=Path,
        help="run the master from this tree (e.g. `git archive COMMIT | tar -x -C DIR`), "
        "for a before/after comparison with the same hollow agents",
    )
    parser.add_argument("--timeout", type=float, default=600.0, help="seconds to converge")
    parser.add_argument(
        "--agents-per-channel",
        type=int,
        default=10,
        help="--insecure: hollow agents sharing one connection (with TLS each has its own)",
    )
    parser.add_argument(
        "--master-arg", action="append", default=[], help="one more master flag (repeatable)"
    )
    parser.add_argument(
        "--profile-master",
        default="",
        metavar="FILE[:wall]",
        help="run the master under yappi (tests/bench/profile_master.py), CPU clock unless "
        ":wall, and save its profile to FILE when it stops: from the apply on",
    )
    parser.add_argument(
        "--profile-window",
        action="store_true",
        help="--profile-master from the steady-state window on instead",
    )
    parser.add_argument(
        "--profile-joins",
        action="store_true",
        help="--profile-master from the master's start (the joins, and all that follows)",
    )
    parser.add_argument(
        "--stalls",
        type=float,
        default=0.0,
        metavar="MS",
        help="run the master under tests/bench/debug_master.py and list the loop callbacks "
        "that held it over MS of CPU, from its start to the SIGTERM",
    )
    parser.add_argument(
        "--memory-probe",
        default="",
        metavar="OUT",
        help="run the master under tests/bench/memory_probe.py: OUT.jsonl gets its RSS, "
        "malloc and pymalloc totals after the joins (tracemalloc starts), once all pods are "
        "Running and after the window (malloc_trim then), OUT-2.snap and OUT-3.snap the "
        "snapshots",
    )
    parser.add_argument(
        "--return-timeout",
        type=float,
        default=240.0,
        help="seconds from all Running to wait for the fleet back on the cluster's plan",
    )
    parser.add_argument(
        "--after-window",
        type=float,
        default=20.0,
        help="seconds to count heartbeat acks over once the fleet is back (or the wait is over)",
    )
    parser.add_argument(
        "--trace",
        default="",
        metavar="OUT",
        help="run the master under tests/bench/trace_master.py: OUT gets the timeline of the "
        "apply (decisions, bindings, sends, reports, heartbeats, passes, node conditions) "
        "to 5 s after all Running; `python -m tests.bench.trace_master --report OUT` prints it",
    )
    parser.add_argument(
        "--fleet-nice",
        type=int,
        default=0,
        metavar="N",
        help="run the fleet processes at niceness N (`nice -n N`): agents that stand in for "
        "other machines take the CPU the master leaves; 0 (the default): equal priority",
    )
    parser.add_argument("--no-record", action="store_true", help="do not append results.jsonl")
    args = parser.parse_args()
    stalls_dir = tempfile.mkdtemp(prefix="pinnace-hollow-stalls-") if args.stalls else ""
    stalls_out = str(Path(stalls_dir) / "stalls.json") if stalls_dir else ""
    stop_times: list[float] = []
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    started = os.getloadavg()
    result = asyncio.run(
        main_async(
            args.nodes,
            args.pods,
            args.window,
            args.agents_per_channel,
            args.source,
            args.timeout,
            args.processes,
            args.insecure,
            args.deaths,
            tuple(args.master_arg),
            args.profile_master,
            args.profile_window,
            death_kinds=tuple(k for k in args.death_kinds.split(",") if k),
            profile_joins=args.profile_joins,
            stalls_ms=args.stalls,
            stalls_out=stalls_out,
            stop_times=stop_times,
            memory_probe=args.memory_probe,
            return_timeout=args.return_timeout,
            after_window=args.after_window,
            trace=args.trace,
            fleet_nice=args.fleet_nice,
        )
    )
    if stalls_dir:
        from tests.bench.kube_api import report_stalls

        report_stalls(Path(stalls_out), args.stalls)
        subprocess.run(["rm", "-rf", stalls_dir], check=False)
    if result is None:
        sys.exit(1)
    found = figures(result, args.window, args.insecure, args.return_timeout)
    tag = f"hollow {result.nodes}/{result.pods}{' insecure' if args.insecure else ''}"
    found += [Figure(f"{tag} SIGTERM -> master exit", t, "s") for t in stop_times]
    print()
    print(table(found))
    print(f"load average at start {started[0]:.2f}, at end {os.getloadavg()[0]:.2f}")
    if not args.no_record:
        record(found, "python -m tests.bench.hollow " + " ".join(sys.argv[1:]))


if __name__ == "__main__":
    main()
