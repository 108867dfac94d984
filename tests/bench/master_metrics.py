"""The master's /metrics read by a bench: deltas of histograms and counters over a window.

A latency measured by a client on a loaded machine mixes the master's own delays with the
machine's; the master's series tell them apart (master/metrics/looplag.py: how late its
loop ran and whether it was busy or starved; pinnace_commit_phase_seconds: lock, plan,
store, publish). `scrape` parses the text format; `quantile` is Prometheus'
histogram_quantile (linear within a bucket) over the difference of two scrapes.
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Mapping

from prometheus_client.parser import text_string_to_metric_families

# (sample name, sorted label items) -> value
Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def parse(text: str) -> Samples:
    samples: Samples = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            samples[(s.name, tuple(sorted(s.labels.items())))] = float(s.value)
    return samples


def delta(after: Samples, before: Samples) -> Samples:
    return {k: v - before.get(k, 0.0) for k, v in after.items()}


def total(samples: Samples, name: str, **labels: str) -> float:
    """The sum of `name` over the samples whose labels include `labels`."""
    want = set(labels.items())
    return sum(v for (n, items), v in samples.items() if n == name and want <= set(items))


def buckets(samples: Samples, name: str, **labels: str) -> list[tuple[float, float]]:
    """A histogram's cumulative (upper bound, count) pairs, sorted by bound."""
    want = set(labels.items())
    found: dict[float, float] = {}
    for (n, items), v in samples.items():
        if n != f"{name}_bucket" or not want <= set(items):
            continue
        le = dict(items)["le"]
        found[math.inf if le == "+Inf" else float(le)] = (
            found.get(math.inf if le == "+Inf" else float(le), 0.0) + v
        )
    return sorted(found.items())


def quantile(cumulative: list[tuple[float, float]], q: float) -> float:
    """Prometheus' histogram_quantile: NaN without observations; a rank in the +Inf bucket
    answers the largest finite bound."""
    if not cumulative or cumulative[-1][1] <= 0:
        return math.nan
    rank = q * cumulative[-1][1]
    lower_bound, lower_count = 0.0, 0.0
    for bound, count in cumulative:
        if count >= rank:
            if math.isinf(bound):
                return lower_bound
            if count == lower_count:
                return bound
            return lower_bound + (bound - lower_bound) * (rank - lower_count) / (
                count - lower_count
            )
        lower_bound, lower_count = bound, count
    return lower_bound


def machine_share(seconds: float = 1.0) -> float:
    """The share of one core a busy loop in this process got over `seconds` of wall time:
    about 1.0 on a quiet machine, 2 cores / load on a loaded one."""
    wall0, cpu0 = time.perf_counter(), time.process_time()
    while time.perf_counter() - wall0 < seconds:
        sum(range(1000))
    return (time.process_time() - cpu0) / (time.perf_counter() - wall0)


def machine_line(when: str) -> str:
    load = os.getloadavg()
    return (
        f"machine {when}: load average {load[0]:.1f} {load[1]:.1f} {load[2]:.1f} on "
        f"{os.cpu_count()} CPUs; a spinning process got {machine_share() * 100:.0f}% of a core"
    )


def lag_line(window: Mapping[tuple[str, tuple[tuple[str, str], ...]], float]) -> str:
    """The master's loop lag and stalls over a window (a `delta` of two scrapes)."""
    s = dict(window)
    lag = buckets(s, "pinnace_event_loop_lag_seconds")
    stalls = {c: total(s, "pinnace_event_loop_stalls_total", cause=c) for c in ("busy", "starved")}
    stalled = {
        c: total(s, "pinnace_event_loop_stall_seconds_total", cause=c) for c in ("busy", "starved")
    }
    return (
        f"master loop lag p50 {quantile(lag, 0.5) * 1000:.1f} ms  p99 "
        f"{quantile(lag, 0.99) * 1000:.1f} ms; stalls >= 50 ms: {stalls['busy']:.0f} busy "
        f"(its own work, {stalled['busy']:.2f} s) / {stalls['starved']:.0f} starved "
        f"(no CPU, {stalled['starved']:.2f} s)"
    )


def commit_line(window: Samples) -> str:
    """Where the master's commits spent their time over a window, p50/p99 per phase."""
    parts = []
    for phase in ("lock", "plan", "store", "publish"):
        b = buckets(window, "pinnace_commit_phase_seconds", phase=phase)
        parts.append(f"{phase} {quantile(b, 0.5) * 1000:.1f}/{quantile(b, 0.99) * 1000:.1f}")
    return "master commit phases p50/p99 ms: " + ", ".join(parts)
