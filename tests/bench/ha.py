"""Master failover: kill -9 the leader of three masters on a three-member etcd, N times.

    .venv/bin/python -m tests.bench.ha --trials 10 --runs 3 [--compare DIR]
    .venv/bin/python -m tests.bench.ha --idle 300 [--compare DIR] [--burn 2]

Failover (the default): per run, three etcd members (`--heartbeat-interval 50
--election-timeout 500`, tests/etcd_cluster.py) and three `pinnace master --store
etcd --leader-elect` processes on 127.0.0.1 on TLS (no load balancer, no agents).
Each trial: a writer applies deployments `w-0, w-1, ...` as fast as it can over gRPC
to whichever master takes them (followers forward writes to the leader; a master
that fails a call sends the writer to the next), the leader is killed with SIGKILL
once 20 writes are in, and the first write *sent* after the kill is timed from the
kill to its acknowledgement. After the writer stops, every acknowledged write is read
back from the new leader (lost = acknowledged but absent); the killed master is
started again (a follower now) for the next trial.

`--compare DIR` runs the masters of another tree (e.g. `git archive main | tar -x -C
DIR`) as "before", interleaved run by run with this tree's ("after"), so both see
the same load. Printed: one line per trial, then per side the takeover p50 / p99
(nearest rank) / worst over all trials, each run's p99, lost writes and the load
average. The target (issue 14) is p99 <= 2 s and 0 lost.

`--idle SECONDS`: both sides' clusters at once, left alone (no writes, no kills) for
that long; counts leader changes (the leader key polled every 50 ms) and etcd's own
leader changes (its members' etcd_server_leader_changes_seen_total). `--burn N` adds N
busy processes for the time (a busy 2-core machine). Everything started is stopped by
PID; temp dirs are removed. One JSON line per figure goes to tests/bench/results.jsonl
unless --no-record.
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
import uuid
from dataclasses import dataclass, field
from pathlib import Path

from tests.bench.results import Figure, load_average, record, table
from tests.etcd_cluster import EtcdCluster
from tests.integration.masters import Masters
from tests.integration.test_leader_election import NAMES, HaCluster, Writer, deployments


@dataclass
class Side:
    label: str
    source: Path | None
    takeovers: list[float] = field(default_factory=list)
    run_p99: list[float] = field(default_factory=list)
    lost: int = 0
    acked: int = 0
    loads: list[float] = field(default_factory=list)


def p99(values: list[float]) -> float:
    ranked = sorted(values)
    return ranked[max(0, -(-99 * len(ranked) // 100) - 1)]


def watch_leader_key(cluster: HaCluster, old: str, since: float, out: dict[str, float]) -> None:
    """Record when the old leader's key is gone and when another master holds it."""
    deadline = since + 30
    while time.monotonic() < deadline and "elected" not in out:
        leader = cluster.leader()
        now = time.monotonic()
        if leader is None or leader.name != old:
            out.setdefault("vacant", now)
        if leader is not None and leader.name != old:
            out["elected"] = now
        time.sleep(0.005)


def start_cluster(source: Path | None, workdir: Path) -> HaCluster:
    etcd = EtcdCluster.start(members=3)
    prefix = f"/b-{uuid.uuid4().hex[:8]}/"
    masters = Masters(
        workdir, etcd.endpoints, ("--leader-elect", "--etcd-prefix", prefix), source=source
    )
    try:
        masters.start_many(NAMES)
    except BaseException:
        masters.stop_all()
        etcd.stop()
        raise
    return HaCluster(etcd, masters, prefix)


def stop_cluster(cluster: HaCluster) -> None:
    cluster.masters.stop_all()
    cluster.store.close()
    cluster.etcd.stop()


def trial(cluster: HaCluster) -> tuple[float, int, int, dict[str, float]]:
    """(takeover seconds, acknowledged writes, lost writes, phase times from the kill)."""
    masters = cluster.masters
    leader = cluster.wait_leader()
    writer = Writer(masters, [masters.addresses[n] for n in NAMES])
    thread = threading.Thread(target=writer.run)
    thread.start()
    try:
        deadline = time.monotonic() + 30
        while len(writer.acked) < 20 and time.monotonic() < deadline:
            time.sleep(0.01)
        phases: dict[str, float] = {}
        killed_at = time.monotonic()
        watcher = threading.Thread(
            target=watch_leader_key, args=(cluster, leader.name, killed_at, phases)
        )
        watcher.start()
        masters.kill(leader.name)
        new = cluster.wait_leader(other_than=leader.name)
        watcher.join(timeout=30)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            first = writer.first_sent_after(killed_at)
            if first is not None:
                break
            time.sleep(0.01)
        else:
            raise TimeoutError("no write sent after the kill was acknowledged in 30 s")
    finally:
        writer.stop.set()
        thread.join(timeout=30)
    stored = deployments(masters, new.address)
    lost = sum(1 for n in writer.acked if n not in stored)
    masters.start(leader.name, "--name", leader.name)  # back, as a follower
    return first - killed_at, len(writer.acked), lost, {k: v - killed_at for k, v in phases.items()}


def failover_run(side: Side, run: int, trials: int) -> None:
    workdir = Path(tempfile.mkdtemp(prefix="pinnace-ha-bench-"))
    cluster = start_cluster(side.source, workdir)
    takeovers = []
    try:
        for i in range(trials):
            side.loads.append(os.getloadavg()[0])
            takeover, acked, lost, phases = trial(cluster)
            takeovers.append(takeover)
            side.acked += acked
            side.lost += lost
            print(
                f"{side.label} run {run} trial {i + 1}: takeover {takeover:.2f}s (leader key gone "
                f"+{phases.get('vacant', -1):.2f}s, new leader +{phases.get('elected', -1):.2f}s), "
                f"{acked} writes acknowledged, {lost} lost, load {side.loads[-1]:.1f}",
                flush=True,
            )
    finally:
        stop_cluster(cluster)
        shutil.rmtree(workdir, ignore_errors=True)
    side.takeovers += takeovers
    side.run_p99.append(p99(takeovers))


def etcd_leader_changes(etcd: EtcdCluster) -> int:
    """The most leader changes any member has seen (its /metrics counter)."""
    seen = 0
    for member in etcd.members:
        try:
            with urllib.request.urlopen(f"{member.client_url}/metrics", timeout=5) as reply:
                text = reply.read().decode()
        except OSError:
            continue
        for line in text.splitlines():
            if line.startswith("etcd_server_leader_changes_seen_total "):
                seen = max(seen, int(float(line.split()[1])))
    return seen


def idle(sides: list[Side], seconds: float, burn: int) -> list[Figure]:
    """Both sides' clusters at once, untouched for `seconds`: leader changes counted."""
    burners = [
        subprocess.Popen([sys.executable, "-c", "while True: pass"], start_new_session=True)
        for _ in range(burn)
    ]
    clusters: list[tuple[Side, HaCluster, Path]] = []
    figures = []
    try:
        for side in sides:
            workdir = Path(tempfile.mkdtemp(prefix="pinnace-ha-idle-"))
            clusters.append((side, start_cluster(side.source, workdir), workdir))
        starts = {side.label: etcd_leader_changes(c.etcd) for side, c, _ in clusters}
        changes = {side.label: 0 for side in sides}
        vacant = {side.label: 0.0 for side in sides}
        last = {side.label: c.wait_leader().name for side, c, _ in clusters}
        loads = []
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            loads.append(os.getloadavg()[0])
            for side, cluster, _ in clusters:
                leader = cluster.leader()
                name = leader.name if leader is not None else ""
                if not name:
                    vacant[side.label] += 0.05
                if name and name != last[side.label]:
                    changes[side.label] += 1
                    print(f"{side.label}: leader {last[side.label]} -> {name}", flush=True)
                if name:
                    last[side.label] = name
            time.sleep(0.05)
        for side, cluster, _ in clusters:
            etcd_changes = etcd_leader_changes(cluster.etcd) - starts[side.label]
            note = f"{seconds:g}s idle, burn {burn}, load {min(loads):.1f}-{max(loads):.1f}"
            figures += [
                Figure(f"ha idle leader changes ({side.label})", changes[side.label], "", note),
                Figure(f"ha idle leaderless ({side.label})", vacant[side.label], "s", note),
                Figure(f"ha idle etcd leader changes ({side.label})", etcd_changes, "", note),
            ]
    finally:
        for _, cluster, workdir in clusters:
            stop_cluster(cluster)
            shutil.rmtree(workdir, ignore_errors=True)
        for proc in burners:
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=10, help="kills per run (default 10)")
    parser.add_argument("--runs", type=int, default=1, help="fresh clusters per side")
    parser.add_argument("--compare", type=Path, help="another tree's masters as 'before'")
    parser.add_argument("--idle", type=float, default=0, help="count leader changes instead")
    parser.add_argument("--burn", type=int, default=0, help="--idle: busy processes to add")
    parser.add_argument("--no-record", action="store_true")
    args = parser.parse_args()
    sides = [Side("after", None)]
    if args.compare is not None:
        sides.insert(0, Side("before", args.compare.resolve()))
    command = "python -m tests.bench.ha " + " ".join(sys.argv[1:])
    if args.idle:
        figures = idle(sides, args.idle, args.burn)
    else:
        for run in range(1, args.runs + 1):
            for side in sides:
                failover_run(side, run, args.trials)
        figures = []
        for side in sides:
            t = sorted(side.takeovers)
            note = (
                f"{len(t)} trials in {args.runs} run(s); run p99s "
                + ", ".join(f"{p:.2f}" for p in side.run_p99)
                + f"; load {min(side.loads):.1f}-{max(side.loads):.1f}"
            )
            figures += [
                Figure(f"ha takeover p50 ({side.label})", statistics.median(t), "s", note),
                Figure(f"ha takeover p99 ({side.label})", p99(t), "s", note),
                Figure(f"ha takeover worst ({side.label})", t[-1], "s", note),
                Figure(
                    f"ha writes lost ({side.label})", side.lost, "", f"of {side.acked} acknowledged"
                ),
            ]
    print(table(figures))
    print(f"load average now: {load_average()}")
    if not args.no_record:
        record(figures, command)


if __name__ == "__main__":
    main()
