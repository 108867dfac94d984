"""The event loop's CPU for the cluster gauges of one /metrics scrape, at scale.

A scrape runs `measure_cluster` on the master's loop (master/metrics/cluster.py). This
fills a ClusterState (in memory) with `--nodes` nodes and `--pods` pods, and times the
measurement as the master makes it: the pods' totals from the kept tally (PodTally, a
state listener), and the same with the totals counted from every pod (what each scrape
did before), 30 times each, with one pod changed between scrapes.

    python -m tests.bench.scrape_cost --nodes 5000 --pods 50000

Prints the median and worst of each (main-thread CPU, ms) and the load average.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from dataclasses import replace

from kernel.clock import FakeClock
from master.metrics.cluster import PodTally, count_pods, measure_cluster
from master.model import Node, PodPhase
from master.state import ClusterState
from master.store import MemoryStore
from tests.bench.listener_memory import _fill


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nodes", type=int, default=5000)
    parser.add_argument("--pods", type=int, default=50000)
    args = parser.parse_args()
    load = os.getloadavg()[0]
    clock = FakeClock()
    state = ClusterState(MemoryStore(), clock)
    _fill(state, args.nodes, args.pods)
    tally = PodTally(state.pods())
    state.subscribe(tally.on_change)
    seen = {f"hollow-{i:05d}": 0.0 for i in range(args.nodes)}
    costs: dict[str, list[float]] = {"kept totals": [], "counted from every pod": []}
    pods = state.pods()
    for i in range(30):
        pod = state.pod(pods[i].meta.name)
        assert pod is not None
        phase = PodPhase.PENDING if pod.status.phase == PodPhase.RUNNING else PodPhase.RUNNING
        state.put(replace(pod, status=replace(pod.status, phase=phase)))
        for what in costs:
            started = time.thread_time()
            nodes = [n for n in state.objects("Node") if isinstance(n, Node)]
            totals = tally.totals() if what == "kept totals" else count_pods(state.pods())
            measure_cluster(totals, nodes, seen.get, clock.monotonic(), {})
            costs[what].append(time.thread_time() - started)
    for what, spent in costs.items():
        print(
            f"scrape {args.nodes}/{args.pods} {what}: median "
            f"{statistics.median(spent) * 1000:.2f} ms, worst {max(spent) * 1000:.2f} ms (of 30)"
        )
    print(f"load average at start {load:.2f}, at end {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
