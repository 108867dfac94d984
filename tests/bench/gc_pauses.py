"""The garbage collector's pauses while a large apply creates objects, by freeze policy.

    python -m tests.bench.gc_pauses [--live 100000] [--created 200000]

A master-sized heap (`--live` objects shaped like stored pods, settled and frozen as the
master does at start) then `--created` more that live on, each with a little garbage
beside it (a mass apply: faster than the master's 10 s freeze ticks). Each collection's
CPU is timed through gc.callbacks, by generation. Two policies, each in its own process:
`settle` (freeze at start only: the master before kernel/heap.py's freeze_after_full) and
`freeze-after-full` (kernel/heap.py install: also freeze what each full collection
leaves). One table; run it 3 times and report the median and the worst.
"""

from __future__ import annotations

import argparse
import gc
import json
import subprocess
import sys
import time
from typing import Any

from kernel import heap


class _Stored:
    """About the object count of a stored pod: nested maps and lists."""

    def __init__(self, i: int) -> None:
        self.meta = {"name": f"pod-{i}", "labels": {"app": "web"}}
        self.spec = [{"image": "nginx", "ports": [80]}]
        self.status = {"phase": "Pending"}


def measure(policy: str, live: int, created: int) -> dict[str, Any]:
    kept = [_Stored(i) for i in range(live)]
    pauses: dict[int, list[float]] = {0: [], 1: [], 2: []}
    started = [0.0]

    def timed(phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            started[0] = time.thread_time()
        else:
            pauses[info["generation"]].append(time.thread_time() - started[0])

    if policy == "freeze-after-full":
        heap.install()
    else:
        heap.settle()
    gc.callbacks.insert(0, timed)  # timed first: a freeze after a collection is not its pause
    cpu = time.thread_time()
    for i in range(created):
        kept.append(_Stored(i))
        garbage = [{"x": [i]} for _ in range(3)]
        del garbage
    cpu = time.thread_time() - cpu
    return {"policy": policy, "cpu": cpu, "pauses": pauses}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--live", type=int, default=100_000)
    parser.add_argument("--created", type=int, default=200_000)
    parser.add_argument("--policy", default="", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.policy:
        print(json.dumps(measure(args.policy, args.live, args.created)))
        return
    print(f"{args.created} objects created beside {args.live} settled ones:")
    print(f"{'policy':18} {'gen':>3} {'count':>6} {'largest ms':>11} {'sum ms':>8}  run CPU s")
    for policy in ("settle", "freeze-after-full"):
        out = subprocess.run(
            [sys.executable, "-m", "tests.bench.gc_pauses", "--policy", policy,
             "--live", str(args.live), "--created", str(args.created)],
            check=True, capture_output=True, text=True,
        ).stdout  # fmt: skip
        found = json.loads(out)
        for generation, times in sorted(found["pauses"].items()):
            largest = max(times, default=0.0) * 1000
            print(
                f"{policy:18} {generation:>3} {len(times):6d} {largest:11.1f} "
                f"{sum(times) * 1000:8.1f}  {found['cpu']:.2f}"
            )


if __name__ == "__main__":
    main()
