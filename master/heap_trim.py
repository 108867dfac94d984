"""Giving glibc's free heap pages back to the system once a burst of work is over.

glibc keeps what a transient peak freed: the free chunks stay in its heaps, resident where
they were touched, and it returns memory on its own only from the top of a heap. A master
applying 10,000 pods to 1,000 nodes ends with ~38 MB of such free chunks;
`malloc_trim(0)` then releases the whole free pages inside them (madvise DONTNEED):
284 -> 272 MiB of RSS, in 8 ms (tests/bench/memory_probe.py, tests/bench/README.md).

`TrimPlan` (pure) says when: once the store's resource version has moved BURST_CHANGES
since the last trim (a burst: an apply, a scale, a mass deletion, a cluster joining) and
then held nearly still (fewer than QUIET_CHANGES a tick) for QUIET_TICKS ticks running:
one trim per burst, never in the middle of one (what it frees would be taken again at
once) and never on a quiet master. `run` reads the resource version on a clock and trims
on a worker thread: malloc_trim holds each arena's lock while it walks that arena, so
the loop's own mallocs wait at most for one arena's walk, not for the whole trim.

Only where the C library is glibc (`glibc_trim` is None elsewhere: musl, macOS).
"""

from __future__ import annotations

import asyncio
import ctypes
import logging
import platform
import time
from collections.abc import Callable
from dataclasses import dataclass

from kernel.clock import Clock

log = logging.getLogger(__name__)

TICK_S = 5.0
# Changes (resource versions) since the last trim that make a burst worth trimming after.
BURST_CHANGES = 2000
# A tick with fewer changes than this is quiet; this many quiet ticks running end a burst.
QUIET_CHANGES = 50
QUIET_TICKS = 2


@dataclass(slots=True)
class TrimPlan:
    """The resource version at the last trim (or start) and at the last tick; see the
    module docstring."""

    trimmed_at: int
    seen: int
    quiet: int = 0
    burst: int = BURST_CHANGES
    quiet_changes: int = QUIET_CHANGES
    quiet_ticks: int = QUIET_TICKS

    def tick(self, version: int) -> bool:
        """The resource version now, once a tick: whether to trim now."""
        moved, self.seen = version - self.seen, version
        self.quiet = self.quiet + 1 if moved < self.quiet_changes else 0
        if version - self.trimmed_at >= self.burst and self.quiet >= self.quiet_ticks:
            self.trimmed_at = version
            return True
        return False


def glibc_trim() -> Callable[[], int] | None:
    """glibc's `malloc_trim(0)` (returns 1 when it gave memory back), or None when this
    process's C library is not glibc or has no such function."""
    if platform.system() != "Linux" or platform.libc_ver()[0] != "glibc":
        return None
    try:
        libc = ctypes.CDLL("libc.so.6")
        trim = libc.malloc_trim
    except (OSError, AttributeError):
        return None
    trim.argtypes = [ctypes.c_size_t]
    trim.restype = ctypes.c_int

    def trim_all() -> int:
        return int(trim(0))

    return trim_all


async def run(
    clock: Clock,
    version: Callable[[], int],
    trim: Callable[[], int],
    rss: Callable[[], int],
    tick_s: float = TICK_S,
) -> None:
    """Every `tick_s`, ask the plan; trim on a worker thread when it says so."""
    plan = TrimPlan(trimmed_at=version(), seen=version())
    while True:
        await clock.sleep(tick_s)
        if not plan.tick(version()):
            continue
        before = rss()
        started = time.perf_counter()
        await asyncio.to_thread(trim)
        took = time.perf_counter() - started
        log.info(
            "after a burst of changes: malloc_trim gave back %.1f MiB of RSS in %.3f s",
            (before - rss()) / 2**20,
            took,
        )
