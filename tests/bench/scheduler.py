"""Benchmark: scheduler placements/s and placement quality, full scan vs sampling.

Run as `python -m tests.bench.scheduler [--nodes 1000,5000] [--pods 2000] [--runs 3]`.
In process, no master: the pure scheduler (`schedule_batch`) places a burst of
`--pods` pods of one Deployment (100m CPU, 128 MiB each) on `--nodes` nodes of
8 CPU / 16 GiB that already carry 5 pods each of 50 other owners with uneven
requests (so least-allocated scoring has something to choose). Each size runs
full scan (percentageOfNodesToScore 100) and the master's adaptive sampling
(Kubernetes' default: 50% minus 1% per 125 nodes, at least 5%, never fewer than
100 nodes), interleaved, `--runs` times; the table gives the median rate and the
worst, and the quality of the last run:

- spread skew: the most minus the fewest of the burst's pods on a node (0 or 1
  is a perfect spread);
- utilisation: the highest CPU request share of any node after the burst, and
  the standard deviation of that share over the nodes (lower: more even).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from dataclasses import dataclass

from master.model import Container, Node, NodeStatus, ObjectMeta, Pod, PodSpec, Resources
from master.scheduler import (
    DEFAULT_FILTERS,
    FilterPlugin,
    FilterResult,
    Placement,
    build_node_infos,
    schedule_batch,
)
from master.scheduler.nodeinfo import NodeInfo
from tests.bench.results import Figure, record, table

GIB = 1024**3
# name -> (percentageOfNodesToScore, through the general plugin framework). The
# framework row is the same decision without the fused loop (master/scheduler/fused.py):
# the before/after of that change, side by side in one run.
MODES = {"full scan": (100, False), "sampled": (0, False), "sampled, plugin framework": (0, True)}


class _Wrapped:
    """A default filter under another object, so schedule_batch takes the framework path."""

    def __init__(self, inner: FilterPlugin) -> None:
        self.inner = inner
        self.name = inner.name

    def filter(self, pod: Pod, info: NodeInfo) -> FilterResult:
        return self.inner.filter(pod, info)


@dataclass(frozen=True, slots=True)
class Outcome:
    rate: float
    # Placements per second of this process's own CPU time: on a machine shared with
    # others (load 5-15 on 2 cores) the wall rate says as much about them as about us.
    cpu_rate: float
    skew: int
    max_share: float
    share_stdev: float


def _pod(name: str, cpu: int, memory: int, owner: str, node: str = "") -> Pod:
    container = Container(name="c", image="nginx", requests=Resources(cpu, memory))
    return Pod(
        meta=ObjectMeta(name=name),
        spec=PodSpec(containers=(container,)),
        owner=owner,
        node_name=node,
    )


def cluster(node_count: int) -> dict[str, NodeInfo]:
    nodes = [
        Node(
            meta=ObjectMeta(name=f"node-{i:05}"),
            address="10.0.0.1",
            capacity=Resources(8000, 16 * GIB),
            allocatable=Resources(8000, 16 * GIB),
            status=NodeStatus(ready=True),
        )
        for i in range(node_count)
    ]
    bound = [
        _pod(f"old-{i}-{k}", 100 + 150 * ((i * 7 + k) % 9), GIB // 4, f"app-{(i + k) % 50}", n)
        for i, n in enumerate(node.meta.name for node in nodes)
        for k in range(5)
    ]
    return build_node_infos(nodes, bound)


def run_once(infos: dict[str, NodeInfo], pods: int, percentage: int, general: bool) -> Outcome:
    burst = [_pod(f"web-{i}", 100, GIB // 8, "Deployment/web") for i in range(pods)]
    started, cpu_started = time.perf_counter(), time.process_time()
    filters = [_Wrapped(f) for f in DEFAULT_FILTERS] if general else DEFAULT_FILTERS
    results, after = schedule_batch(
        burst, infos, filters=filters, percentage_of_nodes_to_score=percentage
    )
    elapsed = time.perf_counter() - started
    cpu = time.process_time() - cpu_started
    placed = sum(1 for r in results.values() if isinstance(r, Placement))
    per_node = [i.pods_by_owner.get("Deployment/web", 0) for i in after.values()]
    shares = [i.requested.cpu_millis / i.node.allocatable.cpu_millis for i in after.values()]
    return Outcome(
        rate=placed / elapsed,
        cpu_rate=placed / cpu if cpu > 0 else float("inf"),
        skew=max(per_node) - min(per_node),
        max_share=max(shares),
        share_stdev=statistics.pstdev(shares),
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nodes", default="1000,5000", help="comma-separated node counts")
    parser.add_argument("--pods", type=int, default=2000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--no-record", action="store_true", help="do not append results.jsonl")
    args = parser.parse_args(argv)
    figures: list[Figure] = []
    for count in [int(n) for n in args.nodes.split(",") if n.strip()]:
        infos = cluster(count)
        outcomes: dict[str, list[Outcome]] = {mode: [] for mode in MODES}
        for _ in range(args.runs):
            for mode, (percentage, general) in MODES.items():
                outcomes[mode].append(run_once(infos, args.pods, percentage, general))
        for mode, runs in outcomes.items():
            rates = [o.rate for o in runs]
            cpu_rates = [o.cpu_rate for o in runs]
            last = runs[-1]
            prefix = f"scheduler {count} nodes {mode}"
            figures += [
                Figure(
                    f"{prefix} placements/s",
                    statistics.median(rates),
                    "1/s",
                    f"median of {len(rates)}, worst {min(rates):.0f}; {args.pods} pods",
                ),
                Figure(
                    f"{prefix} placements per CPU-second",
                    statistics.median(cpu_rates),
                    "1/s",
                    f"median of {len(cpu_rates)}, worst {min(cpu_rates):.0f}",
                ),
                Figure(f"{prefix} spread skew", last.skew, "pods"),
                Figure(f"{prefix} max node cpu share", last.max_share, "ratio"),
                Figure(f"{prefix} cpu share stdev", last.share_stdev, "ratio"),
            ]
    print(table(figures))
    print(f"load average {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    if not args.no_record:
        record(figures, "python -m tests.bench.scheduler " + " ".join(argv or sys.argv[1:]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
