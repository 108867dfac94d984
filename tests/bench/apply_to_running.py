"""Benchmark: from "ask" to N nginx replicas running, pinnace vs docker run vs Swarm.

Run as `python -m tests.bench.apply_to_running [--replicas 3,30] [--trials 3]`
(`make bench`). On one node with `nginx:latest` present (`make images`), each
trial asks each system for N replicas and times until the engine lists N running
containers, on two clocks (tests/bench/engine.py's Timing): the engine's own
State.StartedAt of the last container (the table's figures, alike for every system),
and the bench's 50 ms poll (a second table; a `docker run` has returned by then, a
system starting containers on its own is found up to a poll late): pinnace
(`pinnace apply -f` of a Deployment, the CLI process included), plain `docker run -d`
N times in a row, the same N `docker run -d` started all at once (the engine's own
limit), and `docker service create` on a single-node Swarm. Trials are interleaved
(pinnace, docker run, swarm, then again) so a slow patch of the machine does not land
on one system only, and each system is asked once none of the earlier trials' containers
is left (pinnace's pod sandbox holders and standbys included) and the engine has then been
quiet for 0.3 s (engine.py's `wait_clear`): the trials are independent. The table shows
the median (min-max) per system and pinnace's ratios against the targets. Everything
started here (processes by PID, containers by id or label, the swarm if this run created
it) is removed in finally blocks, also on Ctrl-C and SIGTERM; the master's and agent's
logs stay in the printed tmp dir when the pinnace part fails.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import platform
import shutil
import signal
import subprocess
import sys
import tempfile
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType

import docker

from tests.bench import report
from tests.bench.engine import (
    BENCH_LABEL,
    IMAGE,
    BenchError,
    Clear,
    SwarmSession,
    Timing,
    clear_for_trial,
    docker_cli,
    machine_info,
    remove_containers,
    time_docker_run,
    time_docker_run_parallel,
)
from tests.bench.engine_spans import Spans, format_spans, median_spans
from tests.bench.pinnace_side import PinnaceBench

SYSTEM_FLAGS = {
    "pinnace": report.PINNACE,
    "docker-run": report.DOCKER_RUN,
    "parallel-run": report.PARALLEL_RUN,
    "swarm": report.SWARM,
}


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m tests.bench.apply_to_running",
        description="Time from the ask to N nginx replicas running: pinnace, docker run, Swarm.",
    )
    parser.add_argument("--replicas", default="3,30", help="comma-separated N (default 3,30)")
    parser.add_argument("--trials", type=int, default=3, help="trials per N and system")
    parser.add_argument(
        "--systems",
        default="pinnace,docker-run,parallel-run,swarm",
        help="comma-separated subset of pinnace,docker-run,parallel-run,swarm",
    )
    parser.add_argument(
        "--timeout", type=float, default=180.0, help="seconds one trial may take before it fails"
    )
    parser.add_argument("--keep", action="store_true", help="keep the tmp dir (logs, data)")
    parser.add_argument(
        "--pod-sandbox",
        action="store_true",
        help="run pinnace's agents (both trees' with --source) with --pod-sandbox",
    )
    parser.add_argument(
        "--agent-arg",
        action="append",
        default=[],
        metavar="FLAG",
        help="give this tree's agent FLAG (repeatable; e.g. --agent-arg=--no-standby-sandbox); the"
        " --source tree's runs without it",
    )
    parser.add_argument(
        "--source",
        type=Path,
        help="also time pinnace from this checkout in the same trials (a before/after)",
    )
    args = parser.parse_args(argv)
    if args.source is not None and not (args.source / "master" / "cli" / "main.py").is_file():
        parser.error(f"--source {args.source}: not a pinnace checkout (no master/cli/main.py)")
    try:
        args.replica_counts = [int(n) for n in args.replicas.split(",") if n.strip()]
    except ValueError:
        parser.error(f"--replicas: expected comma-separated integers, got {args.replicas!r}")
    if not args.replica_counts or min(args.replica_counts) < 1:
        parser.error("--replicas: every N must be >= 1")
    if args.trials < 1:
        parser.error("--trials must be >= 1")
    unknown = [s for s in args.systems.split(",") if s not in SYSTEM_FLAGS]
    if unknown:
        parser.error(f"--systems: unknown {', '.join(unknown)}")
    args.system_names = [SYSTEM_FLAGS[s] for s in args.systems.split(",")]
    return args


def _raise_interrupt(signum: int, frame: FrameType | None) -> None:
    # SIGTERM takes the same path as Ctrl-C, so every finally block runs.
    raise KeyboardInterrupt(f"signal {signum}")


def _warm_up(client: docker.DockerClient, run_id: str) -> None:
    """One untimed nginx start, so the first timed system does not pay for a cold cache."""
    label = f"{BENCH_LABEL}.warmup={run_id}"
    try:
        docker_cli("run", "-d", "--label", label, IMAGE)
    finally:
        remove_containers(client, label)


@dataclass(slots=True)
class Outcome:
    """What the run measured, and why a system has no numbers."""

    # The engine's clock (the table's), and the poll's.
    results: dict[str, dict[int, list[float]]] = field(
        default_factory=lambda: {s: {} for s in report.TRIAL_ORDER}
    )
    seen: dict[str, dict[int, list[float]]] = field(
        default_factory=lambda: {s: {} for s in report.TRIAL_ORDER}
    )
    # Where each trial's time went (tests/bench/engine_spans.py).
    spans: dict[str, dict[int, list[Spans]]] = field(
        default_factory=lambda: {s: {} for s in report.TRIAL_ORDER}
    )
    failures: dict[str, str] = field(default_factory=dict)
    skipped: dict[str, str] = field(default_factory=dict)


TRIAL_ERRORS = (BenchError, docker.errors.APIError, subprocess.TimeoutExpired)


def _run_trials(
    args: argparse.Namespace,
    runners: dict[str, Callable[[str, int], Timing]],
    run_id: str,
    outcome: Outcome,
    clear: Callable[[], Clear],
) -> None:
    # Interleaved: each trial runs every system once before the next trial starts, each on
    # an engine clear of the last one's containers, standbys included, and quiet
    # (engine.py's `wait_clear`): the trials are independent of one another.
    for n in args.replica_counts:
        for trial in range(1, args.trials + 1):
            for system in report.TRIAL_ORDER:
                if system not in runners or system in outcome.failures:
                    continue
                gate = clear()
                if not gate.clear:
                    left = f"{len(gate.left)} containers left" if gate.left else "never quiet"
                    print(
                        f"  N={n:<3} trial {trial}  {system}: the engine was not clear after "
                        f"{gate.waited:.1f} s ({left}); the trial runs anyway"
                    )
                try:
                    timing = runners[system](f"bench-{run_id}-{n}-{trial}", n)
                except TRIAL_ERRORS as e:
                    outcome.failures[system] = f"N={n} trial {trial}: {e}"
                    print(f"{system}: failed: {outcome.failures[system]}", file=sys.stderr)
                    continue
                outcome.results[system].setdefault(n, []).append(timing.engine)
                outcome.seen[system].setdefault(n, []).append(timing.seen)
                print(
                    f"  N={n:<3} trial {trial}  {system:<10} {timing.engine:6.3f} s "
                    f"(poll {timing.seen:6.3f} s)  {format_spans(timing.spans)}",
                    flush=True,
                )
                if timing.spans is not None:
                    outcome.spans[system].setdefault(n, []).append(timing.spans)


def _print_report(
    args: argparse.Namespace, outcome: Outcome, pinnaces: Sequence[PinnaceBench]
) -> None:
    for title, results in (
        ("the engine's clock: the ask -> the last container's State.StartedAt", outcome.results),
        ("the poll's clock: the ask -> the first 50 ms poll listing all N running", outcome.seen),
    ):
        print()
        print(title)
        print(report.render_table(args.replica_counts, results))
        if args.source is not None:
            print(f"this tree against --source {args.source}, the same trials:")
            for line in report.source_lines(args.replica_counts, results):
                print(f"  {line}")
    print()
    print("the engine's events, median per span over the trials (seconds from the ask):")
    for system, by_n in outcome.spans.items():
        for n, trials in by_n.items():
            print(f"  N={n:<3} {system:<16} {format_spans(median_spans(trials))}")
    print()
    print(report.targets_note())
    if any(p.phases for p in pinnaces):
        print("pinnace phases per trial, seconds from the ask (apply CLI returned / first")
        print("container listed running / the last one's StartedAt = measured / all listed")
        print("running by the poll / `get pods` confirmed all Running):")
    for bench in pinnaces:
        for name, p in bench.phases.items():
            print(
                f"  {name}: {p.apply_cli:.3f} / {p.first_running:.3f} / "
                f"{p.engine_running:.3f} / {p.all_running:.3f} / {p.api_running:.3f}"
            )
    for system, reason in outcome.skipped.items():
        print(f"{system}: skipped: {reason}")
    for system, reason in outcome.failures.items():
        print(f"{system}: FAILED: {reason}")


def _check_engine(client: docker.DockerClient) -> str | None:
    try:
        client.ping()
        client.images.get(IMAGE)
    except docker.errors.ImageNotFound:
        return f"image {IMAGE} is missing: run `make images`"
    except Exception as e:  # the SDK raises several types for "no engine"
        return f"no Docker engine: {e}"
    return None


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    signal.signal(signal.SIGTERM, _raise_interrupt)
    # A shell starts background jobs with SIGINT ignored; the bench should still stop on it.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    client = docker.from_env()
    problem = _check_engine(client)
    if problem:
        print(problem, file=sys.stderr)
        return 1

    run_id = uuid.uuid4().hex[:6]
    workdir = Path(tempfile.mkdtemp(prefix=f"pinnace-bench-{run_id}-"))
    info = machine_info(client)
    print(
        f"machine: {os.cpu_count()} CPUs (nproc), {platform.platform()}, Python "
        f"{platform.python_version()}; Docker {info['docker']}, storage {info['storage']}"
    )
    print(f"run id {run_id}; tmp dir {workdir}")

    outcome = Outcome()
    pinnace: PinnaceBench | None = None
    before: PinnaceBench | None = None
    swarm: SwarmSession | None = None
    runners: dict[str, Callable[[str, int], Timing]] = {}
    try:
        _warm_up(client, run_id)
        if report.PINNACE in args.system_names:
            agent_args = ("--pod-sandbox",) if args.pod_sandbox else ()
            pinnace = bench = PinnaceBench(
                client, run_id, workdir, agent_args=(*agent_args, *args.agent_arg)
            )
            try:
                bench.start(timeout=60.0)
                print(f"pinnace: master {bench.address}, node {bench.node} Ready")
                runners[report.PINNACE] = lambda name, n: bench.timed_apply(name, n, args.timeout)
            except TRIAL_ERRORS as e:
                outcome.failures[report.PINNACE] = f"setup: {e}"
                print(f"pinnace: failed to start: {e}", file=sys.stderr)
            if args.source is not None:
                (workdir / "source").mkdir()
                before = other = PinnaceBench(
                    client,
                    f"{run_id}s",
                    workdir / "source",
                    source=args.source.resolve(),
                    agent_args=agent_args,
                )
                try:
                    other.start(timeout=60.0)
                    print(f"pinnace --source: master {other.address}, node {other.node} Ready")
                    # Its own deployment names: both clusters' containers share one engine.
                    runners[report.SOURCE] = lambda name, n: other.timed_apply(
                        f"{name}-s", n, args.timeout
                    )
                except TRIAL_ERRORS as e:
                    outcome.failures[report.SOURCE] = f"setup: {e}"
                    print(f"pinnace --source: failed to start: {e}", file=sys.stderr)
        if report.DOCKER_RUN in args.system_names:
            runners[report.DOCKER_RUN] = lambda name, n: time_docker_run(
                client, run_id, name, n, args.timeout
            )
        if report.PARALLEL_RUN in args.system_names:
            runners[report.PARALLEL_RUN] = lambda name, n: time_docker_run_parallel(
                client, run_id, name, n, args.timeout
            )
        if report.SWARM in args.system_names:
            swarm = session = SwarmSession(client)
            try:
                skip = session.start()
            except TRIAL_ERRORS as e:
                outcome.failures[report.SWARM] = f"setup: {e}"
            else:
                if skip:
                    outcome.skipped[report.SWARM] = skip
                    print(f"swarm: skipped: {skip}", file=sys.stderr)
                else:
                    runners[report.SWARM] = lambda name, n: session.time_service(
                        name, n, args.timeout
                    )
        # Every container a trial may leave: the baselines' (the run's label) and the
        # pinnace nodes' (pods, sandbox holders and standbys).
        labels = [f"{BENCH_LABEL}={run_id}"]
        labels += [b.node_label for b in (pinnace, before) if b is not None]
        _run_trials(args, runners, run_id, outcome, lambda: clear_for_trial(client, labels))
    except KeyboardInterrupt:
        print("interrupted: cleaning up", file=sys.stderr)
        raise
    finally:
        if pinnace is not None:
            pinnace.close()
        if before is not None:
            before.close()
        if swarm is not None:
            swarm.close()
        client.close()
        # The master's and agent's logs are what a pinnace failure is read from.
        if report.PINNACE in outcome.failures or report.SOURCE in outcome.failures or args.keep:
            print(f"logs and data kept in {workdir}", file=sys.stderr)
        else:
            shutil.rmtree(workdir, ignore_errors=True)

    _print_report(args, outcome, [b for b in (pinnace, before) if b is not None])
    return 1 if outcome.failures else 0


if __name__ == "__main__":
    with contextlib.suppress(KeyboardInterrupt):
        sys.exit(main())
    sys.exit(130)
