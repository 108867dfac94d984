"""`make bench`: a quick set of the benches, one table, one JSON line per figure.

Run as `python -m tests.bench.quick [--skip docker]`. A few minutes on two cores:

- scheduler: placements/s at 1,000 nodes, full scan and sampled (in process);
- store_writes: fsynced user commits/s and status updates/s (in process, SQLite);
- hollow: 100 hollow nodes, 1,000 pods: apply -> all Running, master CPU and RSS;
- recovery: container kill -> running again, 3 trials (Docker, pinnace/httpd);
- apply_to_running: apply -> 3 running, pinnace and `docker run`, 3 trials each.

The last two need a Docker engine and the images (`make images`); `--skip docker`
leaves them out. Every figure goes to tests/bench/results.jsonl (ignored by git)
with the command, the load average and the git commit (tests/bench/results.py).
The machine is usually shared: compare figures taken in the same run, or at
similar load averages.
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import statistics
import sys
import tempfile
import uuid
from collections.abc import Callable
from pathlib import Path

from tests.bench import scheduler, store_writes
from tests.bench.results import Figure, load_average, record, table

COMMAND = "python -m tests.bench.quick"


def _median_note(values: list[float], worst: float) -> str:
    return f"median of {len(values)}, worst {worst:.3f}"


def bench_scheduler() -> list[Figure]:
    infos = scheduler.cluster(1000)
    figures = []
    for mode, (percentage, general) in scheduler.MODES.items():
        rates = [scheduler.run_once(infos, 1000, percentage, general).rate for _ in range(3)]
        figures.append(
            Figure(
                f"scheduler 1000 nodes {mode} placements/s",
                statistics.median(rates),
                "1/s",
                _median_note(rates, min(rates)),
            )
        )
    return figures


def bench_store_writes() -> list[Figure]:
    runs = [asyncio.run(store_writes._one_run("FULL", 100, 100)) for _ in range(3)]
    user = [r[0] for r in runs]
    p99 = [r[2] for r in runs]
    status = [r[3] for r in runs]
    return [
        Figure(
            "store user commits/s (FULL)",
            statistics.median(user),
            "1/s",
            _median_note(user, min(user)),
        ),
        Figure(
            "store commit p99 (FULL)", statistics.median(p99), "ms", _median_note(p99, max(p99))
        ),
        Figure(
            "store status updates/s (FULL)",
            statistics.median(status),
            "1/s",
            _median_note(status, min(status)),
        ),
    ]


def bench_hollow() -> list[Figure]:
    from tests.bench import hollow

    r = asyncio.run(hollow.main_async(100, 1000, 10.0))
    if r is None:
        raise RuntimeError("100 hollow nodes / 1,000 pods did not converge")
    return [
        Figure("hollow 100/1000 apply -> all Running", r.converge_s, "s"),
        Figure("hollow 100/1000 master CPU steady", r.cpu_cores, "cores", "10 s window"),
        Figure("hollow 100/1000 master RSS", r.rss_mib, "MiB"),
    ]


def bench_container_kill() -> list[Figure]:
    import docker

    from tests.bench import recovery

    client = docker.from_env()
    workdir = Path(tempfile.mkdtemp(prefix="pinnace-quick-"))
    try:
        args = recovery.parse_args(["--only", "container-kill", "--trials", "3", "--no-swarm"])
        kills = recovery._run_pinnace(client, workdir, args)[0]
    finally:
        client.close()
        shutil.rmtree(workdir, ignore_errors=True)
    return [
        Figure(
            "container kill -> running",
            statistics.median(kills),
            "s",
            _median_note(kills, max(kills)),
        )
    ]


def bench_apply() -> list[Figure]:
    import docker

    from tests.bench.engine import time_docker_run
    from tests.bench.pinnace_side import PinnaceBench

    client = docker.from_env()
    run_id = uuid.uuid4().hex[:6]
    workdir = Path(tempfile.mkdtemp(prefix="pinnace-quick-"))
    bench = PinnaceBench(client, run_id, workdir)
    times: dict[str, list[float]] = {"pinnace": [], "docker run": []}
    try:
        bench.start(timeout=60.0)
        for trial in range(3):
            times["pinnace"].append(bench.time_apply(f"quick-{run_id}-{trial}", 3, 120.0))
            times["docker run"].append(
                time_docker_run(client, run_id, f"quick-{run_id}-d{trial}", 3, 120.0).seen
            )
    finally:
        bench.close()
        client.close()
        shutil.rmtree(workdir, ignore_errors=True)
    return [
        Figure(f"apply -> 3 running ({system})", statistics.median(v), "s", _median_note(v, max(v)))
        for system, v in times.items()
    ]


BENCHES: dict[str, tuple[bool, Callable[[], list[Figure]]]] = {
    # name: (needs Docker, run)
    "scheduler": (False, bench_scheduler),
    "store_writes": (False, bench_store_writes),
    "hollow": (False, bench_hollow),
    "container_kill": (True, bench_container_kill),
    "apply": (True, bench_apply),
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--skip", action="append", default=[], help="a bench name, or `docker` for all that need it"
    )
    parser.add_argument("--no-record", action="store_true", help="do not append results.jsonl")
    args = parser.parse_args(argv)
    figures: list[Figure] = []
    failed: list[str] = []
    print(f"load average at start: {load_average()}", flush=True)
    for name, (needs_docker, run) in BENCHES.items():
        if name in args.skip or (needs_docker and "docker" in args.skip):
            continue
        print(f"-- {name}", flush=True)
        try:
            got = run()
        except Exception as exc:  # one broken bench must not lose the others' figures
            print(f"{name}: failed: {exc}", file=sys.stderr)
            failed.append(name)
            continue
        figures += got
        if not args.no_record:
            record(got, COMMAND + " " + " ".join(argv if argv is not None else sys.argv[1:]))
    print()
    print(table(figures))
    print(f"load average at end: {load_average()}")
    if failed:
        print(f"failed: {', '.join(failed)}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
