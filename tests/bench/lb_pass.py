"""The master's CPU for one load balancer pass after one pod changed, at scale.

The load balancer controller (master/lb/controller.py) passes after changes and at least
once a second. This fills a ClusterState (in memory) with the service table bench's
cluster (tests/bench/service_table.py: `--nodes`, `--pods` bound, Running, ready and
published, `--services` Services, the first over every pod), builds the controller with
a driver that programmes nothing (what HAProxy costs is not the pass's own), and times
`sync_once()` 30 times after one pod's readiness flipped (its endpoint comes or goes),
then 30 times after a change that moves no endpoint (a restart count), and the state's
put of each change (the listeners run in it).

    python -m tests.bench.lb_pass --nodes 1000 --pods 10000 --services 10

Prints median and worst of each (main-thread CPU, ms) and the load average.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import time
from pathlib import Path
from typing import Any

from kernel.clock import FakeClock
from master.lb.controller import LoadBalancerController
from master.lb.model import LbAddresses
from master.state import ClusterState
from master.store import MemoryStore
from tests.bench.service_table import _fill, _flip


class _Driver:
    """Takes every programme and keeps nothing."""

    running = True
    adopted = False
    pid = 0
    config_path = Path("/nonexistent/haproxy.cfg")

    async def apply(self, *args: Any) -> None:
        return None


async def measure(nodes: int, pods: int, services: int) -> dict[str, list[float]]:
    state = ClusterState(MemoryStore(), FakeClock())
    _fill(state, nodes, pods, services)
    lb = LoadBalancerController(
        state,
        FakeClock(),
        _Driver(),  # type: ignore[arg-type]
        LbAddresses(listen="127.0.0.1", internal="127.0.0.2"),
    )
    await lb.sync_once()
    found: dict[str, list[float]] = {}
    chosen = state.pods()[:: max(1, pods // 30)][:30]
    for endpoint in (True, False):
        what = "endpoint change" if endpoint else "no endpoint change"
        for pod in chosen:
            started = time.thread_time()
            _flip(state, pod, endpoint)
            put = time.thread_time()
            await lb.sync_once()
            done = time.thread_time()
            found.setdefault(f"{what}: put", []).append(put - started)
            found.setdefault(f"{what}: sync_once()", []).append(done - put)
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nodes", type=int, default=1000)
    parser.add_argument("--pods", type=int, default=10000)
    parser.add_argument("--services", type=int, default=10)
    args = parser.parse_args()
    load = os.getloadavg()[0]
    found = asyncio.run(measure(args.nodes, args.pods, args.services))
    for what, costs in found.items():
        print(
            f"lb pass {args.nodes}/{args.pods}/{args.services} {what}: median "
            f"{statistics.median(costs) * 1000:.3f} ms, worst {max(costs) * 1000:.3f} ms (of 30)"
        )
    print(f"load average at start {load:.2f}, at end {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
