"""Benchmark: what fsync on every commit costs the master's two write paths.

Run as `python -m tests.bench.store_writes [--runs 3] [--writes 200] [--batch 100]`.
It drives a real ClusterState over a real SqliteStore in a temporary data dir
(removed afterwards) and measures, per SQLite `synchronous` level:

- user writes: `--writes` scales, each one `ClusterState.commit` (planned,
  fsynced, published) in a row, as `pinnace scale` calls arrive — writes/s
  and the p50/p99 latency of one commit;
- status batches: `--writes` flushes of `--batch` pod status updates each, as
  the background flusher writes agent reports — pod updates/s.

FULL is what the master runs (an answered write survives a power cut); NORMAL
is what it ran before (survives a process crash only) and is set here on the
store's connection for the comparison alone. Each level runs `--runs` times,
interleaved; the table shows the median and the worst run.
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import statistics
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

from kernel.clock import SystemClock
from master.model import (
    Container,
    Deployment,
    ObjectMeta,
    Pod,
    PodPhase,
    PodSpec,
    PodStatus,
    PodTemplate,
)
from master.state import ClusterState
from master.store.sqlite import SqliteStore

LEVELS = ("NORMAL", "FULL")


def _deployment() -> Deployment:
    return Deployment(
        meta=ObjectMeta(name="web"),
        replicas=1,
        selector={"app": "web"},
        template=PodTemplate(
            labels={"app": "web"},
            spec=PodSpec(containers=(Container(name="web", image="nginx:latest"),)),
        ),
    )


def _pod(i: int) -> Pod:
    return Pod(
        meta=ObjectMeta(name=f"web-{i}", labels={"app": "web"}),
        spec=_deployment().template.spec,
        owner="web",
        node_name="n1",
    )


async def _one_run(level: str, writes: int, batch: int) -> tuple[float, float, float, float]:
    """(user writes/s, p50 ms, p99 ms, status updates/s) for one fresh data dir."""
    data = Path(tempfile.mkdtemp(prefix="pinnace-bench-store-"))
    try:
        store = SqliteStore.in_data_dir(data)
        conn = store._conn  # the level is per connection; set for the comparison only
        assert conn is not None
        conn.execute(f"PRAGMA synchronous = {level}")
        state = ClusterState(store, SystemClock())
        await state.commit(lambda: state.put(_deployment()))
        for i in range(batch):
            state.put(_pod(i))
        await state.flush()

        latencies = []
        started = time.perf_counter()
        for n in range(writes):

            def scale(replicas: int = n + 2) -> None:
                dep = state.get("Deployment", "web")
                assert isinstance(dep, Deployment)
                state.put(replace(dep, replicas=replicas))

            t0 = time.perf_counter()
            await state.commit(scale)
            latencies.append(time.perf_counter() - t0)
        user_rate = writes / (time.perf_counter() - started)

        started = time.perf_counter()
        for n in range(writes):
            for i in range(batch):
                pod = state.pod(f"web-{i}")
                assert pod is not None
                state.put(replace(pod, status=PodStatus(phase=PodPhase.RUNNING, started_at=n)))
            await state.flush()
        status_rate = writes * batch / (time.perf_counter() - started)
        store.close()
        latencies.sort()
        p99 = latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))]
        return user_rate, statistics.median(latencies) * 1000, p99 * 1000, status_rate
    finally:
        shutil.rmtree(data, ignore_errors=True)


def _cell(values: list[float], worst_is_low: bool) -> str:
    worst = min(values) if worst_is_low else max(values)
    return f"{statistics.median(values):.1f} (worst {worst:.1f})"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--writes", type=int, default=200)
    parser.add_argument("--batch", type=int, default=100)
    args = parser.parse_args(argv)
    results: dict[str, list[tuple[float, float, float, float]]] = {lv: [] for lv in LEVELS}
    for _ in range(args.runs):
        for level in LEVELS:
            results[level].append(asyncio.run(_one_run(level, args.writes, args.batch)))
    print(
        f"store_writes: {args.writes} commits, {args.writes} batches of {args.batch}, "
        f"{args.runs} runs per level; median (worst run)"
    )
    header = ["synchronous", "user writes/s", "commit p50 ms", "commit p99 ms", "status upd/s"]
    print(" | ".join(header))
    for level in LEVELS:
        rows = results[level]
        print(
            " | ".join(
                [
                    level,
                    _cell([r[0] for r in rows], True),
                    _cell([r[1] for r in rows], False),
                    _cell([r[2] for r in rows], False),
                    _cell([r[3] for r in rows], True),
                ]
            )
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
