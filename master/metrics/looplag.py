"""How late the master's event loop runs, and whose fault it is: the master's or the machine's.

Everything the master does (heartbeats, API answers, controllers) shares one asyncio loop;
a synchronous section that runs for 200 ms delays every other request by up to 200 ms. A
probe sleeps `PROBE_INTERVAL` over and over and measures how much later than asked it
woke: that lateness is what any request arriving at that moment waited before its first
line ran.

A late wake-up has two causes a benchmark must tell apart. Either the loop's thread was
busy running something else (the master's own stall: a long scan, a big JSON encode), or
it was runnable but not running (a loaded machine gave the process no CPU, or another of
the master's threads held the GIL). The probe tells them apart by the loop thread's CPU
time over the interval: a thread that burned most of the interval was busy; one that
burned little was waiting to run. `judge` (pure) decides; `run_probe` (the edge) measures
and reports to the Prometheus series:

- `pinnace_event_loop_lag_seconds` (histogram): every wake-up's lateness;
- `pinnace_event_loop_stalls_total{cause}`: wake-ups at least `STALL_SECONDS` late, by
  their main cause, `busy` (the master's own loop) or `starved` (the machine, or the GIL);
- `pinnace_event_loop_stall_seconds_total{cause}`: their lateness, split: the part the
  loop's thread spent on the CPU is `busy`, the rest `starved`.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

from prometheus_client import Counter, Histogram

from kernel.clock import Clock

# 20 wake-ups a second: a stall of 50 ms or more is seen; the probe costs ~1 ms CPU/s.
PROBE_INTERVAL = 0.05
# A wake-up this late is a stall (the write latency goal is p99 <= 50 ms).
STALL_SECONDS = 0.05
# The loop thread used at least this share of the interval's wall time: it was busy.
BUSY_SHARE = 0.5

Cause = Literal["busy", "starved"]
CAUSES: tuple[Cause, ...] = ("busy", "starved")

LAG_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1, 2, 5, 10)
LOOP_LAG = Histogram(
    "pinnace_event_loop_lag_seconds",
    "How much later than asked the master's event loop ran a timer (sampled every "
    f"{PROBE_INTERVAL:g}s): what a request arriving then waited before being looked at.",
    buckets=LAG_BUCKETS,
)
LOOP_STALLS = Counter(
    "pinnace_event_loop_stalls_total",
    f"Timer wake-ups at least {STALL_SECONDS:g}s late, by cause: busy (the loop's thread "
    "ran something else: the master's own stall) or starved (it got no CPU: a loaded "
    "machine, or the GIL held by another thread).",
    ["cause"],
)
LOOP_STALL_SECONDS = Counter(
    "pinnace_event_loop_stall_seconds_total",
    "Lateness summed over the stalls of pinnace_event_loop_stalls_total: the part the "
    "loop's thread ran on the CPU (busy), the rest (starved).",
    ["cause"],
)
for _cause in CAUSES:
    LOOP_STALLS.labels(_cause)
    LOOP_STALL_SECONDS.labels(_cause)


@dataclass(frozen=True, slots=True)
class Wakeup:
    """One probe interval: how late it ended; when that is a stall, its main cause and
    how much of the lateness the loop's thread was running (`busy`, <= `lag`)."""

    lag: float
    stall: Cause | None = None
    busy: float = 0.0


def judge(asked: float, wall: float, cpu: float) -> Wakeup:
    """A sleep of `asked` seconds that took `wall` seconds, while the loop's thread used
    `cpu` seconds of CPU."""
    lag = max(0.0, wall - asked)
    if lag < STALL_SECONDS:
        return Wakeup(lag)
    cause: Cause = "busy" if cpu >= BUSY_SHARE * wall else "starved"
    return Wakeup(lag, cause, min(lag, max(0.0, cpu)))


def observe(wakeup: Wakeup) -> None:
    LOOP_LAG.observe(wakeup.lag)
    if wakeup.stall is not None:
        LOOP_STALLS.labels(wakeup.stall).inc()
        LOOP_STALL_SECONDS.labels("busy").inc(wakeup.busy)
        LOOP_STALL_SECONDS.labels("starved").inc(wakeup.lag - wakeup.busy)


async def run_probe(
    clock: Clock,
    cpu_clock: Callable[[], float] = time.thread_time,
    report: Callable[[Wakeup], None] = observe,
    interval: float = PROBE_INTERVAL,
) -> None:
    """Sleep `interval` forever, reporting each wake-up (a task on the master's loop:
    `cpu_clock` must be the loop thread's CPU time, which `time.thread_time` is there)."""
    while True:
        wall0, cpu0 = clock.monotonic(), cpu_clock()
        await clock.sleep(interval)
        report(judge(interval, clock.monotonic() - wall0, cpu_clock() - cpu0))
