"""Apply -> Running in one process: the master's own CPU per pod, phase by phase.

The hollow bench (tests/bench/hollow.py) times the whole path with real agents, TLS
and gRPC; on a shared 2-core machine its figure says as much about the fleet and the
neighbours as about the master. This one runs the master's part of the path alone,
on its own objects, with nothing between them: a real ClusterState on a SqliteStore
in a temporary directory (with the server's managedFields bookkeeping), the
controller manager, the Kubernetes API's watch hub, and for each node what its
session does (master/api/node_servicer.py): what changed of its assignment set sent
(master/app/assignment_feed.py: the whole set first, then the changes; `--whole-sets`:
the whole set every time, as an older agent gets it and as every agent got it before),
each new assignment reported Running once (as a hollow agent reports it) through the
node reports. Until every pod is Running:

  controller passes   create the Deployment's pods and bind them (run_pass)
  assignments         the dirty nodes' assignment messages (assignments_to_proto,
                      assignment_changes_to_proto)
  status reports      the agents' reports applied (NodeReports.apply)
  events              the queued events written, as the master's event writer does
                      every EVENT_WRITE_INTERVAL (master/event_queue.py; further apart
                      through a burst where the tree does so), and once at the end
  store flush         the queued changes written (SQLite, FULL; its own thread) as the
                      master's background flusher writes them (newly logged events may
                      wait: master/write_hold.py), and what it held written at the end;
                      the rows (puts and deletes) a pod cost the store beside it

Then, all Running, one more figure: the CPU of a controller pass after one pod's status
changed (what each batch of agents' reports costs the loop at steady state).

Each row gives the main thread's CPU seconds (time.thread_time) and the wall time
(the flush is mostly the writer thread's). `--profile FILE` saves a cProfile of
the whole run (read it with pstats).

    python -m tests.bench.apply_path --nodes 1000 --pods 10000

Prints one table and appends one JSON line per figure to tests/bench/results.jsonl
(`--no-record`: none).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import cProfile
import gc
import inspect
import os
import shutil
import statistics
import sys
import tempfile
import time
import tracemalloc
from dataclasses import dataclass, replace
from pathlib import Path

from prometheus_client import REGISTRY

from kernel.clock import SystemClock
from kernel.heap import resident_bytes
from master.api.convert import (
    assignment_changes_to_proto,
    assignments_to_proto,
    pod_report_from_proto,
)
from master.api.fieldowners import writer_fields
from master.api.kube.watch import WatchHub
from master.api.node_servicer import assignment_inputs
from master.app.assignment_feed import AssignmentFeed, SendChanges, SendWhole
from master.app.reports import NodeReports
from master.controllers.manager import ControllerManager
from master.controllers.nodes import LeaseTable
from master.event_queue import EVENT_WRITE_INTERVAL
from master.model import (
    Container,
    ContainerPort,
    Deployment,
    Node,
    NodeStatus,
    ObjectMeta,
    Pod,
    PodPhase,
    PodSpec,
    PodTemplate,
    Resources,
    StoredObject,
    key_of,
)
from master.state import ClusterState
from master.store.sqlite import SqliteStore
from protos import node_pb2
from tests.bench.memory_probe import libc, malloc_stats, pymalloc_stats
from tests.bench.results import Figure, record, table

PHASES = ("controller passes", "assignments", "status reports", "events", "store flush")


def _report(name: str, epoch: int) -> node_pb2.PodStatusReport:
    """A pod Running and ready, as a hollow agent reports it (tests/bench/hollow_fleet.py)."""
    return node_pb2.PodStatusReport(
        pod_name=name,
        epoch=epoch,
        phase="Running",
        host_ip="127.0.0.1",
        port_map={"80/TCP": 30000},
        ready=True,
        started_at=time.time(),
        containers=[
            node_pb2.ContainerStatusReport(
                name="c", state="running", ready=True, image="nginx:latest"
            )
        ],
    )


def _sent(state: ClusterState, node: str, feed: AssignmentFeed) -> list[node_pb2.PodAssignment]:
    """What the node's session sends now (as NodeServicer._assignments builds it), and the
    assignments in it."""
    send = feed.take()
    if isinstance(send, SendWhole):
        whole = assignments_to_proto(
            state.resource_version, state.pods_on_node(node), lambda p: True, sequence=send.sequence
        )
        return list(whole.pods)
    if not isinstance(send, SendChanges):
        return []
    changed: list[Pod] = []
    removed: list[str] = []
    for key in send.keys:
        pod = state.get_key("Pod", key)
        if isinstance(pod, Pod) and pod.node_name == node:
            changed.append(pod)
        else:
            removed.append(key)
    messages = assignment_changes_to_proto(
        state.resource_version, send.first, changed, removed, lambda p: True
    )
    feed.numbered(len(messages))
    return [a for m in messages for a in m.pods]


async def run(
    nodes: int,
    pods: int,
    profile: str = "",
    memory: Memory | None = None,
    whole_sets: bool = False,
    flusher: bool = False,
) -> dict[str, tuple[float, float]]:
    """Seconds (main-thread CPU, wall) per phase, and "total" (whole-process CPU, wall).
    `memory`: what the pods cost in memory is noted in it (see `Memory`). `whole_sets`:
    every node is sent its whole set at every change (an agent that takes no changes).
    `flusher`: the pass runs in its steps with the master's background flusher between them
    (ClusterState.run_flusher, as the master's loop runs both), so the store sees a pass's
    pods as the master's does (created in one write, bound in a later one); without it the
    whole pass runs before one flush."""
    data = Path(tempfile.mkdtemp(prefix="pinnace-apply-path-"))
    try:
        clock = SystemClock()
        state = ClusterState(SqliteStore.in_data_dir(data), clock)
        state.writer_fields = writer_fields
        await state.load()
        leases = LeaseTable()
        manager = ControllerManager(state, clock, leases)
        WatchHub(state)
        reports = NodeReports(state, clock)
        # What a node's session would send: the nodes whose assignments changed, and each
        # session's side of what changed (master/app/assignment_feed.py).
        dirty: set[str] = set()
        feeds: dict[str, AssignmentFeed] = {}

        def on_change(
            kind: str, obj: StoredObject, deleted: bool, previous: StoredObject | None
        ) -> None:
            if (
                isinstance(obj, Pod)
                and obj.node_name
                and (
                    deleted
                    or not isinstance(previous, Pod)
                    or assignment_inputs(previous) != assignment_inputs(obj)
                )
            ):
                dirty.add(obj.node_name)
                feeds[obj.node_name].pod_changed(key_of(obj))

        state.subscribe(on_change)
        room = Resources(32000, 64 * 2**30)
        for i in range(nodes):
            name = f"hollow-{i:05d}"
            state.put(
                Node(
                    meta=ObjectMeta(name=name),
                    address="127.0.0.1",
                    capacity=room,
                    allocatable=room,
                    status=NodeStatus(ready=True),
                )
            )
            leases.renew(name, clock.monotonic())
            leases.set_lease(name, 3600.0)
            feeds[name] = AssignmentFeed(takes_changes=not whole_sets)
            feeds[name].take()  # the session's first (empty) whole set
        await state.flush()
        container = Container(name="c", image="nginx:latest", ports=(ContainerPort(80),))
        deployment = Deployment(
            meta=ObjectMeta(name="hollow"),
            replicas=pods,
            selector={"app": "hollow"},
            template=PodTemplate(labels={"app": "hollow"}, spec=PodSpec(containers=(container,))),
        )
        spent = dict.fromkeys(PHASES, (0.0, 0.0))
        reported: set[tuple[str, int]] = set()

        def note(phase: str, cpu0: float, wall0: float) -> None:
            cpu, wall = spent[phase]
            spent[phase] = (cpu + time.thread_time() - cpu0, wall + time.perf_counter() - wall0)

        if memory is not None:
            memory.start()
        profiler = cProfile.Profile() if profile else None
        cpu_all, wall_all = time.process_time(), time.perf_counter()
        rows0 = _rows_written()
        if profiler is not None:
            profiler.enable()
        flushing = asyncio.create_task(state.run_flusher()) if flusher else None
        await state.commit(lambda: state.put(deployment))
        running = 0
        events_written = time.perf_counter()
        while running < pods:
            cpu0, wall0 = time.thread_time(), time.perf_counter()
            if flushing is None:
                manager.run_pass()
            else:
                for _ in manager._pass_steps():
                    await asyncio.sleep(0)  # (the flusher's turn, as the master's loop gives it)
            note("controller passes", cpu0, wall0)
            cpu0, wall0 = time.thread_time(), time.perf_counter()
            told: dict[str, list[node_pb2.PodStatusReport]] = {}
            for node in sorted(dirty):
                sent = _sent(state, node, feeds[node])
                told[node] = [
                    _report(a.name, a.epoch) for a in sent if (a.name, a.epoch) not in reported
                ]
                reported.update((a.name, a.epoch) for a in sent)
            dirty.clear()
            note("assignments", cpu0, wall0)
            cpu0, wall0 = time.thread_time(), time.perf_counter()
            for node, batch in told.items():
                for one in batch:
                    reports.apply(node, pod_report_from_proto(one), adopted=False)
            note("status reports", cpu0, wall0)
            running = sum(1 for p in state.pods() if p.status.phase == PodPhase.RUNNING)
            cpu0, wall0 = time.thread_time(), time.perf_counter()
            # (As the master's event writer waits: longer through a burst, where the tree
            # has that, master/event_queue.py.)
            interval = getattr(state, "event_write_interval", EVENT_WRITE_INTERVAL)
            if running == pods or wall0 - events_written >= interval:
                state.write_events()
                events_written = wall0
            note("events", cpu0, wall0)
            cpu0, wall0 = time.thread_time(), time.perf_counter()
            if flushing is None:
                await background_flush(state)
            else:
                await asyncio.sleep(0)
            note("store flush", cpu0, wall0)
        if flushing is not None:
            flushing.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await flushing
        # What the background flusher held back (events), written as a flush waited on does.
        cpu0, wall0 = time.thread_time(), time.perf_counter()
        await state.flush()
        note("store flush", cpu0, wall0)
        spent["store rows"] = (_rows_written() - rows0, 0.0)
        if profiler is not None:
            profiler.disable()
            profiler.dump_stats(profile)
        spent["total"] = (time.process_time() - cpu_all, time.perf_counter() - wall_all)
        if memory is not None:
            del told, reported
            memory.stop()
        spent["pass after one report"], spent["report put"] = _pass_after_one_report(state, manager)
        return spent
    finally:
        shutil.rmtree(data, ignore_errors=True)


@dataclass(slots=True)
class Memory:
    """What the pods cost in memory: the process's RSS growth from the nodes being in to
    all pods Running (after a full collection), and with `frames` tracemalloc's traced
    growth over the same span (what was allocated then and is still alive), its largest
    sites and the snapshot. The harness's own bookkeeping (what it reported) is dropped
    before the end; its stand-in for the node sessions' memory of what they sent (`seen`,
    as NodeServicer._assigned keeps it) stays."""

    frames: int = 0
    rss_before: int = 0
    rss_after: int = 0
    # glibc's bytes in use (mallinfo2: Python's objects over 512 bytes, SQLite, C
    # libraries) and pymalloc's allocated blocks, before and after.
    malloc_before: int = 0
    malloc_after: int = 0
    pymalloc_before: int = 0
    pymalloc_after: int = 0
    traced: int = 0
    snapshot: tracemalloc.Snapshot | None = None

    def start(self) -> None:
        gc.collect()
        self.rss_before = resident_bytes()
        self.malloc_before = malloc_stats(libc())["in_use"]
        self.pymalloc_before = pymalloc_stats().get("allocated", 0)
        if self.frames:
            tracemalloc.start(self.frames)

    def stop(self) -> None:
        gc.collect()
        if self.frames:
            self.snapshot = tracemalloc.take_snapshot()
            self.traced = tracemalloc.get_traced_memory()[0]
            tracemalloc.stop()
        self.rss_after = resident_bytes()
        self.malloc_after = malloc_stats(libc())["in_use"]
        self.pymalloc_after = pymalloc_stats().get("allocated", 0)


def _pass_after_one_report(
    state: ClusterState, manager: ControllerManager
) -> tuple[tuple[float, float], tuple[float, float]]:
    """Main-thread CPU of one controller pass after one pod's status changed, at full size
    (median, worst of 30): what every batch of agents' reports costs the loop at steady
    state; it grew with the pod count while passes walked every pod. And the same of the
    report's put itself (the state's listeners run in it)."""
    costs = []
    puts = []
    for pod in state.pods()[:30]:
        status = replace(pod.status, ready=not pod.status.ready)
        started = time.thread_time()
        state.put(replace(pod, status=status))
        puts.append(time.thread_time() - started)
        started = time.thread_time()
        manager.run_pass()
        costs.append(time.thread_time() - started)
    return (statistics.median(costs), max(costs)), (statistics.median(puts), max(puts))


async def background_flush(state: ClusterState) -> None:
    """One write as the master's background flusher makes it (ClusterState.run_flusher:
    newly logged events may wait, master/write_hold.py); a tree from before that hold
    (`--source`-style comparisons run this file in an old tree) flushes everything."""
    if "hold_events" in inspect.signature(state.flush).parameters:
        await state.flush(hold_events=True)
    else:
        await state.flush()


def _rows_written() -> float:
    """Puts and deletes the store was asked to write so far (the master's own series)."""
    return REGISTRY.get_sample_value("pinnace_store_write_batch_size_sum") or 0.0


def report_memory(memory: Memory, tag: str, args: argparse.Namespace) -> None:
    """`--memory`'s table (and the largest sites, grouped by their innermost frames)."""
    found = [
        Figure(
            f"{tag} RSS growth per pod",
            (memory.rss_after - memory.rss_before) / args.pods,
            "B",
            "nodes in -> all Running, after a full collection"
            + (" (tracemalloc on: its own memory included)" if memory.frames else ""),
        )
    ]
    found.append(
        Figure(
            f"{tag} malloc in use growth per pod",
            (memory.malloc_after - memory.malloc_before) / args.pods,
            "B",
            "glibc mallinfo2 uordblks + hblkhd",
        )
    )
    if not memory.frames:
        found.append(
            Figure(
                f"{tag} pymalloc allocated growth per pod",
                (memory.pymalloc_after - memory.pymalloc_before) / args.pods,
                "B",
                "sys._debugmallocstats' bytes in allocated blocks",
            )
        )
    if memory.snapshot is not None:
        found.append(
            Figure(
                f"{tag} traced per pod",
                memory.traced / args.pods,
                "B",
                f"tracemalloc, {memory.frames} frames: allocated after the nodes were in "
                "and alive with all Running",
            )
        )
        if args.memory_snapshot:
            memory.snapshot.dump(args.memory_snapshot)
        for stat in memory.snapshot.statistics("traceback")[: args.memory_top]:
            where = " <- ".join(
                f"{'/'.join(f.filename.rsplit('/', 2)[-2:])}:{f.lineno}" for f in stat.traceback
            )
            print(f"{stat.size / args.pods:8.1f} B/pod {stat.count:8d} blocks  {where}")
    print(table(found))
    if not args.no_record:
        record(found, "python -m tests.bench.apply_path " + " ".join(sys.argv[1:]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nodes", type=int, default=1000)
    parser.add_argument("--pods", type=int, default=10000)
    parser.add_argument("--profile", default="", metavar="FILE", help="save a cProfile here")
    parser.add_argument(
        "--memory",
        type=int,
        default=-1,
        metavar="FRAMES",
        help="figures of memory per pod instead of CPU: the RSS growth from the nodes in to "
        "all Running and, FRAMES > 0, tracemalloc's (FRAMES deep; its CPU cost makes the "
        "CPU figures meaningless then, and its own memory the RSS)",
    )
    parser.add_argument("--memory-top", type=int, default=25, help="--memory: sites listed")
    parser.add_argument("--memory-snapshot", default="", help="--memory: save the snapshot")
    parser.add_argument(
        "--whole-sets",
        action="store_true",
        help="send every node its whole assignment set at every change (an older agent's "
        "way, and every agent's before assignment changes)",
    )
    parser.add_argument(
        "--flusher",
        action="store_true",
        help="run the controller pass in its steps with the master's background flusher "
        "between them, as the master's loop does (the store's rows as the master writes them)",
    )
    parser.add_argument("--no-record", action="store_true", help="do not append results.jsonl")
    args = parser.parse_args()
    started = os.getloadavg()
    memory = Memory(args.memory) if args.memory >= 0 else None
    spent = asyncio.run(
        run(args.nodes, args.pods, args.profile, memory, args.whole_sets, args.flusher)
    )
    tag = f"apply path {args.nodes}/{args.pods}{' whole sets' if args.whole_sets else ''}"
    tag += " flusher" if args.flusher else ""
    if memory is not None:
        report_memory(memory, tag, args)
        print(f"load average at start {started[0]:.2f}, at end {os.getloadavg()[0]:.2f}")
        return
    found = [
        Figure(f"{tag} {phase}", cpu, "s", f"main-thread CPU; wall {wall:.2f} s")
        for phase, (cpu, wall) in spent.items()
        if phase in PHASES
    ]
    cpu, wall = spent["total"]
    found.append(
        Figure(f"{tag} total", cpu, "s", f"process CPU (writer thread too); wall {wall:.2f} s")
    )
    found.append(Figure(f"{tag} per pod", cpu / args.pods * 1000, "ms", "process CPU"))
    rows, _ = spent["store rows"]
    found.append(Figure(f"{tag} store rows per pod", rows / args.pods, "rows", "puts + deletes"))
    median, worst = spent["pass after one report"]
    found.append(
        Figure(
            f"{tag} pass after one report",
            median * 1000,
            "ms",
            f"main-thread CPU, median of 30; worst {worst * 1000:.2f} ms",
        )
    )
    median, worst = spent["report put"]
    found.append(
        Figure(
            f"{tag} report put",
            median * 1000,
            "ms",
            f"main-thread CPU of the put with its listeners, median of 30; worst "
            f"{worst * 1000:.3f} ms",
        )
    )
    print(table(found))
    print(f"load average at start {started[0]:.2f}, at end {os.getloadavg()[0]:.2f}")
    if not args.no_record:
        record(found, "python -m tests.bench.apply_path " + " ".join(sys.argv[1:]))


if __name__ == "__main__":
    main()
