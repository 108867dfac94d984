"""Run the master, keeping a timeline of an apply's path: what it decided, bound, sent and heard.

    python -m tests.bench.trace_master OUT master --listen ...

Where does the wall of a big apply go? py-spy says where the CPU goes; this says when.
It wraps the master's own functions before it imports them and counts, in buckets of
BUCKET seconds of `time.monotonic()` (the same clock in every process):

  created    pods the deployment controller created (put_by of a new Pod)
  decided    scheduler decisions (master/scheduler/framework.py's schedule_each)
  bound      pods bound (ControllerManager._bind)
  sent       assignment messages built for nodes' sessions, and the pods in them
  reported   pod status reports applied (NodeReports.apply), and how many said Running
  beats      heartbeats read, and the largest send -> read delay among them (wall clocks
             of one machine)
  lag        the loop-lag probe's lateness summed (master/metrics/looplag.py)
  loop_cpu   the loop thread's CPU in the controller passes' steps
  gave_way   the wall a pass waited between its steps (ControllerManager._give_way, where
             the tree has it)
  waited     of that, what it slept waiting for the streams (master/controllers/read_pause.py:
             what _give_way returns; the rest is the loop's turn)

and as events: each controller pass (its end, wall, steps, the loop thread's CPU in them),
the rest planned after it (the steps' held wall, the rest) and the rest taken, and each
node condition the lifecycle set (time, node, condition, message). SIGUSR1 starts the
recording (tests/bench/hollow.py sends it at the apply), SIGUSR2 ends it; OUT gets one
JSON object at exit, which `python -m tests.bench.trace_master --report OUT` prints.
"""

from __future__ import annotations

import atexit
import importlib
import json
import runpy
import signal
import sys
import time
from collections import defaultdict
from collections.abc import Iterator
from typing import Any

BUCKET = 0.5


class Trace:
    def __init__(self) -> None:
        self.recording = False
        self.started = 0.0
        self.counts: dict[str, dict[int, float]] = defaultdict(lambda: defaultdict(float))
        self.peaks: dict[str, dict[int, float]] = defaultdict(dict)
        self.events: list[list[Any]] = []

    def add(self, series: str, value: float = 1.0, at: float | None = None) -> None:
        if self.recording:
            t = time.monotonic() if at is None else at
            self.counts[series][int((t - self.started) / BUCKET)] += value

    def peak(self, series: str, value: float) -> None:
        if self.recording:
            b = int((time.monotonic() - self.started) / BUCKET)
            cell = self.peaks[series]
            cell[b] = max(cell.get(b, 0.0), value)

    def event(self, *row: Any) -> None:
        if self.recording:
            self.events.append([round(time.monotonic() - self.started, 3), *row])

    def dump(self, out: str) -> None:
        with open(out, "w") as f:
            json.dump(
                {
                    "bucket": BUCKET,
                    "counts": {k: dict(v) for k, v in self.counts.items()},
                    "peaks": self.peaks,
                    "events": self.events,
                },
                f,
            )


def _install(trace: Trace) -> None:
    # Any: this wraps the master's private functions, whatever their types.
    reports: Any = importlib.import_module("master.app.reports")
    manager: Any = importlib.import_module("master.controllers.manager")
    looplag: Any = importlib.import_module("master.metrics.looplag")
    node_servicer: Any = importlib.import_module("master.api.node_servicer")
    from master.model import Pod

    cm = manager.ControllerManager

    original_each = manager.schedule_each

    def schedule_each(*args: Any, **kwargs: Any) -> Iterator[Any]:
        for decided in original_each(*args, **kwargs):
            trace.add("decided")
            yield decided

    manager.schedule_each = schedule_each

    original_bind = cm._bind

    def _bind(self: Any, pod: Any, node_name: str) -> None:
        trace.add("bound")
        original_bind(self, pod, node_name)

    cm._bind = _bind

    original_rest = manager.rest_after_pass

    def rest_after_pass(held: float, *args: Any, **kwargs: Any) -> float:
        rest = float(original_rest(held, *args, **kwargs))
        if rest > 0:
            trace.event("rest", round(held, 4), round(rest, 4))
        return rest

    manager.rest_after_pass = rest_after_pass

    original_rest_method = getattr(cm, "_rest", None)
    if original_rest_method is not None:

        async def _rest(self: Any, planned: float) -> None:
            start = time.monotonic()
            await original_rest_method(self, planned)
            if planned > 0:
                trace.event("rested", round(planned, 4), round(time.monotonic() - start, 4))

        cm._rest = _rest

    original_give_way = getattr(cm, "_give_way", None)
    if original_give_way is not None:

        async def _give_way(self: Any, *args: Any) -> Any:
            start = time.monotonic()
            waited = await original_give_way(self, *args)
            trace.add("gave_way", time.monotonic() - start)
            trace.add("waited", waited)
            return waited

        cm._give_way = _give_way

    original_steps = cm._tick_steps

    def _tick_steps(self: Any) -> Iterator[bool]:
        start, steps, cpu = time.monotonic(), 0, 0.0
        inner = original_steps(self)
        while True:
            c0 = time.thread_time()
            try:
                item = next(inner)
            except StopIteration:
                cpu += time.thread_time() - c0
                break
            cpu += time.thread_time() - c0
            trace.add("loop_cpu", time.thread_time() - c0)
            steps += 1
            yield item
        trace.event("pass", round(time.monotonic() - start, 4), steps, round(cpu, 4))

    cm._tick_steps = _tick_steps

    original_action = cm._execute_node_action

    def _execute_node_action(self: Any, action: Any, now: float) -> None:
        if type(action).__name__ == "SetNodeCondition":
            trace.event("condition", action.node, action.condition, action.message)
        elif type(action).__name__ == "EvictPod":
            trace.add("evicted")
        original_action(self, action, now)

    cm._execute_node_action = _execute_node_action

    original_put_by = manager.ClusterState.put_by

    def put_by(self: Any, writer: str, obj: Any, *args: Any, **kwargs: Any) -> Any:
        if isinstance(obj, Pod) and not obj.node_name and writer == manager.CONTROLLER_MANAGER:
            trace.add("created")
        return original_put_by(self, writer, obj, *args, **kwargs)

    manager.ClusterState.put_by = put_by

    original_apply = reports.NodeReports.apply

    def apply(self: Any, node_name: str, report: Any, adopted: bool) -> None:
        trace.add("reported")
        if report.status.phase == "Running":
            trace.add("reported_running")
        original_apply(self, node_name, report, adopted)

    reports.NodeReports.apply = apply

    ns = node_servicer.NodeServicer
    original_receive = ns._receive

    def _receive(self: Any, node_name: str, session: Any, msg: Any) -> None:
        if msg.WhichOneof("body") == "heartbeat":
            trace.add("beats")
            if msg.heartbeat.sent_at:
                trace.peak("beat_delay", time.time() - msg.heartbeat.sent_at)
        elif msg.WhichOneof("body") == "statuses":
            trace.add("status_messages")
        original_receive(self, node_name, session, msg)

    ns._receive = _receive

    original_assignments = ns._assignments

    def _assignments(self: Any, node_name: str, session: Any) -> Any:
        out = original_assignments(self, node_name, session)
        trace.add("sent", len(out))
        for m in out:
            body = m.WhichOneof("body")
            if body == "assignment_changes":
                trace.add("sent_pods", len(m.assignment_changes.pods))
            elif body == "assignments":
                trace.add("sent_pods", len(m.assignments.pods))
        return out

    ns._assignments = _assignments

    original_observe = looplag.observe

    def observe(wakeup: Any) -> None:
        trace.add("lag", wakeup.lag)
        trace.peak("lag_max", wakeup.lag)
        original_observe(wakeup)

    looplag.observe = observe
    if looplag.run_probe.__defaults__ is not None:
        # run_probe took the original `observe` as a default argument: point it here.
        defaults = list(looplag.run_probe.__defaults__)
        defaults = [observe if d is original_observe else d for d in defaults]
        looplag.run_probe.__defaults__ = tuple(defaults)


def main() -> None:
    out = sys.argv[1]
    trace = Trace()
    _install(trace)

    def start(*_: object) -> None:
        trace.recording, trace.started = True, time.monotonic()

    def stop(*_: object) -> None:
        trace.recording = False

    signal.signal(signal.SIGUSR1, start)
    signal.signal(signal.SIGUSR2, stop)
    atexit.register(trace.dump, out)
    sys.argv = ["master.cli.main", *sys.argv[2:]]
    runpy.run_module("master.cli.main", run_name="__main__")


def report(path: str, width: int = 2) -> None:
    """Prints the timeline in rows of `width` buckets."""
    with open(path) as f:
        data = json.load(f)
    bucket, counts, peaks = data["bucket"], data["counts"], data["peaks"]
    columns = [
        "created",
        "decided",
        "bound",
        "sent",
        "sent_pods",
        "status_messages",
        "reported_running",
        "beats",
        "loop_cpu",
        "gave_way",
        "waited",
        "lag",
    ]
    last = max((int(b) for s in counts.values() for b in s), default=0)
    print("t(s)  " + " ".join(f"{c[:9]:>9}" for c in columns) + "  beat_delay  lag_max")
    for row in range(0, last + 1, width):
        cells = []
        for c in columns:
            v = sum(counts.get(c, {}).get(str(b), 0.0) for b in range(row, row + width))
            seconds = c in ("loop_cpu", "gave_way", "waited", "lag")
            cells.append(f"{v:9.2f}" if seconds else f"{v:9.0f}")
        delay = max(
            (peaks.get("beat_delay", {}).get(str(b), 0.0) for b in range(row, row + width)),
            default=0.0,
        )
        lag = max(
            (peaks.get("lag_max", {}).get(str(b), 0.0) for b in range(row, row + width)),
            default=0.0,
        )
        print(f"{row * bucket:5.1f} " + " ".join(cells) + f"  {delay:10.2f} {lag:8.2f}")
    conditions = [e for e in data["events"] if e[1] == "condition"]
    print(f"{len(conditions)} node conditions set:")
    for e in conditions[:60]:
        print(f"  {e[0]:7.2f} {e[2]} {e[3]}: {e[4][:160]}")
    passes = [e for e in data["events"] if e[1] in ("pass", "rest", "rested")]
    print("passes over 0.1 s and rests over 0:")
    for e in passes:
        if (e[1] == "pass" and e[2] > 0.1) or (e[1] in ("rest", "rested") and e[3] > 0):
            print(f"  {e[0]:7.2f} {e[1:]}")


if __name__ == "__main__":
    if sys.argv[1] == "--report":
        report(sys.argv[2], int(sys.argv[3]) if len(sys.argv) > 3 else 2)
    else:
        main()
