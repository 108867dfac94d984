"""Run the master, noting every event-loop callback that burned more than MS of CPU.

    python -m tests.bench.debug_master OUT MS master --listen ...

A callback (a task's step, a timer, an I/O handler) runs alone on the loop: while it
runs, no request is read and no answer sent. asyncio's debug mode logs slow callbacks by
wall time, which on a loaded machine mostly measures the machine (a 2 ms step that waited
300 ms for a CPU looks slow); this wraps `Handle._run` and measures each callback's CPU
time on the loop's thread (`time.thread_time`) instead, so what it lists is the master's
own stalls whatever the load. Each step is named by its coroutine and the line it resumed
at. The garbage collector's pauses (which land inside whichever callback allocated last)
are noted apart, by generation, and left out of the callbacks' CPU. At exit OUT gets one
JSON object: "sites": {site: [count, cpu seconds summed, largest]} for the callbacks over
MS, "gc": {generation: [count, seconds summed, largest]}, "heap" (objects tracked per
generation and frozen, when the window ended) and the totals over every callback.
tests/bench/kube_api.py uses it for `--stalls MS`, sending SIGUSR1 when its window starts
(what came before is forgotten) and SIGUSR2 when it ends (nothing after is noted). The
wrapper costs ~2 us per callback. "sweeps" lists kernel/heap.py's full collections in the
window. Experiments: PINNACE_BENCH_HEAP=off runs the master without kernel/heap.py's
policy; PINNACE_BENCH_SWEEP_EVERY=S sweeps every S seconds as the master did before issue
15 (to measure a sweep's pause); PINNACE_BENCH_GC_THRESHOLD=a,b,c sets gc thresholds.

"timeline" (in the window) puts each thing a slow request may have waited on at its time
(`time.monotonic()`, the same clock in every process): Kubernetes API requests ("req":
start, end, method, path), commits ("commit": start, the flush lock taken, end), store
transactions ("store": start, end, objects), collections of at least 2 ms ("gc": start,
end, generation, CPU), callbacks over MS ("cb": start, end, CPU, site), heap steps
("heap": start, end, step) and the loop-lag probe's stalls ("lag": end, lag, cause).
tests/bench/write_trace.py lays the bench's slow writes over it.
"""

from __future__ import annotations

import asyncio.events
import atexit
import gc
import json
import os
import runpy
import signal
import sys
import time
from typing import Any


def _site(handle: asyncio.events.Handle) -> str:
    callback = getattr(handle, "_callback", None)
    task = getattr(callback, "__self__", None)
    if isinstance(task, asyncio.Task):
        coro: Any = task.get_coro()
        frame = getattr(coro, "cr_frame", None)
        code = getattr(coro, "cr_code", None)
        name = getattr(code, "co_qualname", None) or getattr(coro, "__qualname__", repr(coro))
        where = f"{code.co_filename.rsplit('/', 2)[-1]}:{frame.f_lineno}" if frame and code else ""
        return f"task {name} {where}"
    name = getattr(callback, "__qualname__", None) or repr(callback)
    return f"callback {name}"


def _trace_writes(timeline: list[list[Any]], recording: list[bool]) -> None:
    """Put Kubernetes API requests, commits, store transactions and loop-lag stalls on
    the timeline (wrapping the master's own functions before it imports them)."""
    from aiohttp import web

    import master.api.kube.metered as metered
    import master.metrics.looplag as looplag
    import master.state as state
    import master.store.sqlite as sqlite

    now = time.monotonic
    middleware = metered.request_metrics

    async def request_metrics(request: Any, handler: Any) -> Any:
        start = now()
        try:
            return await middleware(request, handler)
        finally:
            if recording[0] and request.method != "GET":
                timeline.append(["req", start, now(), request.method, request.path])

    metered.request_metrics = web.middleware(request_metrics)

    commit = state.ClusterState.commit
    commit_locked = state.ClusterState._commit_locked
    locked_at = [0.0]

    async def timed_commit(self: Any, plan: Any) -> Any:
        start = now()
        try:
            return await commit(self, plan)
        finally:
            if recording[0]:
                timeline.append(["commit", start, locked_at[0], now()])

    async def timed_commit_locked(self: Any, plan: Any) -> Any:
        locked_at[0] = now()
        return await commit_locked(self, plan)

    state.ClusterState.commit = timed_commit  # type: ignore[method-assign]
    state.ClusterState._commit_locked = timed_commit_locked  # type: ignore[method-assign]

    write = sqlite.SqliteStore.write

    def timed_write(self: Any, puts: Any, deletes: Any, meta: Any = None) -> None:
        start = now()
        try:
            write(self, puts, deletes, meta)
        finally:
            if recording[0]:
                timeline.append(["store", start, now(), len(puts) + len(deletes)])

    sqlite.SqliteStore.write = timed_write  # type: ignore[method-assign]

    judge = looplag.judge

    def timed_judge(asked: float, wall: float, cpu: float) -> Any:
        wakeup = judge(asked, wall, cpu)
        if recording[0] and wakeup.stall is not None:
            timeline.append(["lag", now(), wakeup.lag, wakeup.stall])
        return wakeup

    looplag.judge = timed_judge


def _census() -> dict[str, int]:
    """Objects the collector tracks, frozen or not, by type."""
    gc.unfreeze()
    found: dict[str, int] = {}
    for obj in gc.get_objects():
        name = f"{type(obj).__module__}.{type(obj).__qualname__}"
        found[name] = found.get(name, 0) + 1
    gc.freeze()
    return found


def _frozen_garbage(top: int = 25) -> list[tuple[str, int]]:
    """What a sweep would reclaim, by type (PINNACE_BENCH_GARBAGE=1): the reference cycles
    that died after a freeze moved them to the permanent generation."""
    gc.collect()  # what is garbage among the unfrozen objects: not a sweep's
    gc.unfreeze()
    gc.set_debug(gc.DEBUG_SAVEALL)
    gc.collect()
    gc.set_debug(0)
    found: dict[str, int] = {}
    for obj in gc.garbage:
        name = f"{type(obj).__module__}.{type(obj).__qualname__}"
        found[name] = found.get(name, 0) + 1
    gc.garbage.clear()
    gc.freeze()
    return sorted(found.items(), key=lambda kv: -kv[1])[:top]


def main() -> None:
    out, limit = sys.argv[1], float(sys.argv[2]) / 1000
    sites: dict[str, list[float]] = {}
    totals = {"callbacks": 0, "cpu": 0.0}
    original = asyncio.events.Handle._run
    recording = [True]
    # The garbage collector's pauses, by generation: [count, seconds summed, largest].
    collections: dict[str, list[float]] = {}
    gc_started = [0.0]
    gc_wall = [0.0]
    # CPU the collector took so far: a callback's own CPU is its CPU less the collections
    # that happened to run inside it.
    gc_total = [0.0]
    # Unreachable objects the last collection found (a sweep's: what it reclaimed).
    last_collected = [0]

    def on_gc(phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            gc_started[0] = time.thread_time()
            gc_wall[0] = now()
            return
        took = time.thread_time() - gc_started[0]
        if recording[0] and now() - gc_wall[0] >= 0.002:
            timeline.append(["gc", gc_wall[0], now(), info["generation"], took])
        gc_total[0] += took
        last_collected[0] = info["collected"]
        if recording[0]:
            entry = collections.setdefault(str(info["generation"]), [0, 0.0, 0.0])
            entry[0] += 1
            entry[1] += took
            entry[2] = max(entry[2], took)

    gc.callbacks.append(on_gc)
    timeline: list[list[Any]] = []
    now = time.monotonic

    def timed_run(self: asyncio.events.Handle) -> None:
        if not recording[0]:
            original(self)
            return
        site = _site(self)
        start, gc_before, wall = time.thread_time(), gc_total[0], now()
        try:
            original(self)
        finally:
            cpu = time.thread_time() - start - (gc_total[0] - gc_before)
            totals["callbacks"] += 1
            totals["cpu"] += cpu
            if cpu >= limit:
                timeline.append(["cb", wall, now(), cpu, site])
                entry = sites.setdefault(site, [0, 0.0, 0.0])
                entry[0] += 1
                entry[1] += cpu
                entry[2] = max(entry[2], cpu)

    asyncio.events.Handle._run = timed_run  # type: ignore[method-assign]
    # Experiments: the collector's thresholds, or the master's heap policy off (kernel/heap.py).
    thresholds = os.environ.get("PINNACE_BENCH_GC_THRESHOLD", "")
    if thresholds:
        gc.set_threshold(*(int(x) for x in thresholds.split(",")))
    # Sweeps (kernel/heap.py's full collections) in the window: [cpu seconds, frozen
    # objects before, after, unreachable objects it freed]. PINNACE_BENCH_SWEEP_EVERY=S
    # brings back a sweep every S seconds whatever the heap does (the policy before issue
    # 15), to measure its pause.
    import kernel.heap

    sweeps: list[list[float]] = []
    carry_out = kernel.heap.carry_out

    def recorded_carry_out(step: kernel.heap.Step, collector: Any = gc) -> None:
        # Counting the frozen objects walks them all: only around a sweep.
        before = gc.get_freeze_count() if step == "sweep" else 0
        started, wall = time.thread_time(), now()
        carry_out(step, collector)
        if recording[0]:
            timeline.append(["heap", wall, now(), step])
        if step == "sweep" and recording[0]:
            took = time.thread_time() - started
            sweeps.append([took, before, gc.get_freeze_count(), last_collected[0]])

    kernel.heap.carry_out = recorded_carry_out
    sweep_every = os.environ.get("PINNACE_BENCH_SWEEP_EVERY", "")
    if sweep_every:
        heap_run = kernel.heap.run

        async def periodic(*args: Any, **kwargs: Any) -> None:
            await heap_run(*args, **{**kwargs, "sweep_every": float(sweep_every)})

        kernel.heap.run = periodic
    if os.environ.get("PINNACE_BENCH_HEAP") == "off":

        async def never(*_: object, **__: object) -> None:
            await asyncio.Event().wait()

        kernel.heap.settle = lambda *_, **__: None
        kernel.heap.install = lambda *_, **__: lambda: None
        kernel.heap.run = never

    _trace_writes(timeline, recording)

    def window(*_: object) -> None:
        # SIGUSR1: the window starts (forget what came before); SIGUSR2: it ended.
        sites.clear()
        collections.clear()
        sweeps.clear()
        timeline.clear()
        heap_start.update(frozen=gc.get_freeze_count(), at=time.monotonic())
        if os.environ.get("PINNACE_BENCH_GARBAGE"):
            census.clear()
            census.update(_census())
        totals.update(callbacks=0, cpu=0.0)
        recording[0] = True

    signal.signal(signal.SIGUSR1, window)
    heap: dict[str, object] = {}
    heap_start: dict[str, float] = {}
    census: dict[str, int] = {}

    def window_ended(*_: object) -> None:
        recording[0] = False
        heap.update(
            tracked=[len(gc.get_objects(generation)) for generation in range(3)],
            frozen=gc.get_freeze_count(),
            threshold=gc.get_threshold(),
            start=dict(heap_start),
            at=time.monotonic(),
        )
        if os.environ.get("PINNACE_BENCH_GARBAGE"):
            heap["garbage"] = _frozen_garbage()
            after = _census()
            grown = {k: after.get(k, 0) - census.get(k, 0) for k in after}
            heap["grown"] = sorted(grown.items(), key=lambda kv: -kv[1])[:25]

    signal.signal(signal.SIGUSR2, window_ended)

    def dump() -> None:
        if not heap:
            window_ended()
        with open(out, "w") as f:
            json.dump(
                {
                    "sites": sites,
                    "gc": collections,
                    "heap": heap,
                    "sweeps": sweeps,
                    "timeline": timeline,
                    **totals,
                },
                f,
            )

    atexit.register(dump)
    sys.argv = ["master.cli.main", *sys.argv[3:]]
    runpy.run_module("master.cli.main", run_name="__main__")


if __name__ == "__main__":
    main()
