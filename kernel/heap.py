"""Keeping Python's garbage collector from stalling the master's event loop.

CPython's collector is stop-the-world and a full (generation 2) collection walks every
container the process holds. The master holds the whole cluster in memory, plus a stream
and its tasks per node: at 1,000 hollow nodes a full collection measured 120-250 ms of
CPU on the loop's thread, every 10-20 s, and every request arriving then waited for it
(tests/bench/kube_api.py --stalls). Almost all of what it walks lives for the master's
whole life (modules, the loaded objects, long sessions), so walking it again finds nothing.

`gc.freeze()` moves everything alive into a permanent generation the collector skips
(O(1): a list splice). So:

- `settle()` once the master has loaded: one full collection, then freeze.
- every `FREEZE_EVERY` seconds, collect the young generations (a few milliseconds: their
  garbage is not frozen with them) and freeze again: what survived since (new sessions,
  objects that live on) stops being walked; automatic collections then only walk what
  is young.
- a sweep (unfreeze, collect fully, freeze) only when the heap has grown: see below. It
  is the one full stall left (~190 ms at 1,000 nodes), and a master whose heap holds
  steady never takes it.

Why a sweep is needed at all, and why growth is the right trigger: a reference cycle that
was alive at a freeze and died afterwards (an ended session's task and traceback) is only
reclaimed by a full collection of the unfrozen heap. Until then its memory blocks stay
allocated (`sys.getallocatedblocks()`) and its pages in the process's RSS. So whatever a
sweep could reclaim shows as growth of those two since the last sweep: while neither has
grown `SWEEP_GROWTH` above its lowest since then, a sweep would reclaim less than that
share of the heap, and is not worth a stall. A heap that grows (a leak of cycles, or a
cluster that grows) is swept each time it grew by that share: geometric steps, so a
handful of sweeps over a master's life. This replaced a sweep every 15 minutes, whatever
the heap did (before/after: the note of issue 15 and tests/bench/kube_api.py --stalls with
PINNACE_BENCH_SWEEP_EVERY).

Growth of live objects looks the same: a cluster joining, the watch history filling up
(tests/bench/kube_api.py at 1,000 nodes: +7 % a minute after the join, with no dead cycle
among it). A sweep that reclaimed less than `USEFUL_SWEEP` of the blocks says the growth
was live, so the next sweep waits for twice the growth, up to `MAX_SWEEP_GROWTH`; a sweep
that reclaimed more brings the share back to `SWEEP_GROWTH`. Dead cycles can so hold at
most `MAX_SWEEP_GROWTH` of the heap's lowest size since the last sweep: memory stays
bounded, and a steady master is not stalled by sweeps that find nothing.

The measurements are O(1) in the heap's size: `sys.getallocatedblocks()` sums pymalloc's
arenas (~0.3 ms at 900,000 objects), where `gc.get_freeze_count()`, which this used
before, walks every frozen object's list entry (14 ms there): the freeze step held the
master's loop up to 63 ms of CPU at 1,000 nodes every 10 s (with a second walk by the
bench's recorder), the longest hold a write met in tests/bench/kube_api.py.

Between ticks, the collector's own full (generation 2) collections: with everything older
frozen they walk only what was promoted since the last freeze, but while a large apply
creates objects faster than the ticks freeze them, each walks all of it again, and the
pauses grow with the apply (a mass creation of 200,000 objects: 8 collections, the largest
132 ms; tests/bench/gc_pauses.py). `freeze_after_full` (a gc callback) freezes what each
automatic full collection leaves: it has just been found alive, as a tick's freeze finds
it, and the next full collection walks only what came after (the same creation: largest
11-20 ms, a fifth of the collector's time).

`HeapPlan` (pure) decides which step is due from those measurements; `run` measures and
carries it out on a clock.
"""

from __future__ import annotations

import gc
import logging
import os
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal, Protocol

from kernel.clock import Clock

log = logging.getLogger(__name__)

FREEZE_EVERY = 10.0
# Sweep once the allocated blocks or the RSS grew this share above their lowest since the
# last sweep: at most this share of the heap is held by cycles that died frozen...
SWEEP_GROWTH = 0.25
# ...or up to this share, after sweeps that reclaimed less than USEFUL_SWEEP of the blocks
# (the growth was live objects; each such sweep doubles the share).
MAX_SWEEP_GROWTH = 1.0
USEFUL_SWEEP = 0.05

Step = Literal["freeze", "sweep"]


class Collector(Protocol):
    """What of `gc` the plan uses (the module itself in production)."""

    def collect(self, generation: int = 2) -> int: ...

    def freeze(self) -> None: ...

    def unfreeze(self) -> None: ...


@dataclass(frozen=True, slots=True)
class HeapSize:
    """What a sweep could shrink: Python's allocated memory blocks, and the RSS."""

    blocks: int
    rss: int


@dataclass(slots=True)
class HeapPlan:
    """The heap's lowest size since the last sweep; which step is due at each tick.

    `sweep_every` (seconds; None: never by time) is for experiments that want the old
    fixed period back (tests/bench/debug_master.py)."""

    low: HeapSize
    last_sweep: float = 0.0
    growth: float = SWEEP_GROWTH
    sweep_every: float | None = None

    def step(self, now: float, size: HeapSize) -> Step:
        low = self.low = HeapSize(min(self.low.blocks, size.blocks), min(self.low.rss, size.rss))
        grew = _grew(low.blocks, size.blocks, self.growth) or _grew(low.rss, size.rss, self.growth)
        due = self.sweep_every is not None and now - self.last_sweep >= self.sweep_every
        if grew or due:
            self.last_sweep = now
            return "sweep"
        return "freeze"

    def swept(self, before: HeapSize, after: HeapSize) -> None:
        """The heap's size before and after a sweep: the new lowest, and whether the next
        sweep waits for more growth (this one found little: the growth was live)."""
        reclaimed = before.blocks - after.blocks
        if reclaimed < USEFUL_SWEEP * before.blocks:
            self.growth = min(MAX_SWEEP_GROWTH, 2 * self.growth)
        else:
            self.growth = SWEEP_GROWTH
        self.low = after


def _grew(low: int, now: int, share: float) -> bool:
    return low > 0 and now - low >= share * low


def settle(collector: Collector = gc) -> None:
    """A full collection, then freeze what is left (once the master has loaded)."""
    collector.collect()
    collector.freeze()


def freeze_after_full(collector: Collector = gc) -> Callable[[str, dict[str, int]], None]:
    """A `gc.callbacks` entry freezing what each full collection left (see the module
    docstring); `install` adds it."""

    def on_collection(phase: str, info: dict[str, int]) -> None:
        if phase == "stop" and info.get("generation") == 2:
            collector.freeze()

    return on_collection


def install(
    callbacks: list[Callable[[str, dict[str, int]], None]] | None = None,
    collector: Collector = gc,
) -> Callable[[], None]:
    """`settle`, then freeze after every full collection until the returned function is
    called (at master start; the master calls it as it stops, so a process that ran a
    master in it, a test's, does not go on freezing what its collections leave)."""
    settle(collector)
    target = gc.callbacks if callbacks is None else callbacks
    hook = freeze_after_full(collector)
    target.append(hook)

    def uninstall() -> None:
        if hook in target:
            target.remove(hook)

    return uninstall


def carry_out(step: Step, collector: Collector = gc) -> None:
    if step == "sweep":
        started = time.thread_time()
        collector.unfreeze()
        found = collector.collect()
        collector.freeze()
        log.info(
            "full garbage collection: %d unreachable objects, %.3f s",
            found,
            time.thread_time() - started,
        )
    else:
        collector.collect(1)
        collector.freeze()


def resident_bytes() -> int:
    """This process's RSS (Linux's /proc/self/statm); 0 where there is none (never grows)."""
    try:
        with open("/proc/self/statm", "rb") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return 0


async def run(
    clock: Clock,
    collector: Collector = gc,
    freeze_every: float = FREEZE_EVERY,
    sweep_every: float | None = None,
    rss: Callable[[], int] = resident_bytes,
    blocks: Callable[[], int] = sys.getallocatedblocks,
) -> None:
    """Freeze every `freeze_every` seconds, sweep when the heap grew (after `settle`)."""

    def size() -> HeapSize:
        return HeapSize(blocks(), rss())

    plan = HeapPlan(size(), clock.monotonic(), sweep_every=sweep_every)
    while True:
        await clock.sleep(freeze_every)
        before = size()
        step = plan.step(clock.monotonic(), before)
        carry_out(step, collector)
        if step == "sweep":
            plan.swept(before, size())
