"""The LB bench's numbers and tables (pure: records and timestamps in, text out).

The bench hands in what it observed: wrk reports, the per-request records of the fixed-rate
generator (`lb_load.Record`: send/answer times, success, the answering container's hostname), and
monotonic timestamps from the master's pod stream. From these this module derives the two
latencies the issue sets targets for (a pod's readiness to its first request through the LB; a
removal request to the last request the pod answered) and the failed-request counts of each
disruption, and renders the three tables.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

from tests.bench.lb_load import Record
from tests.bench.lb_wrk import WrkResult

TARGET_SECONDS = 1.0


@dataclass(frozen=True, slots=True)
class Disruption:
    """One disruption under a fixed-rate stream: what was sent and what failed."""

    system: str
    what: str
    records: tuple[Record, ...]
    action_seconds: float  # how long the disruption itself took (from the ask to settled)

    @property
    def sent(self) -> int:
        return len(self.records)

    @property
    def failed(self) -> int:
        return sum(1 for r in self.records if not r.ok)

    @property
    def rate(self) -> float:
        """The rate actually achieved: requests over the span of their send times."""
        if len(self.records) < 2:
            return 0.0
        span = self.records[-1].send - self.records[0].send
        return (len(self.records) - 1) / span if span > 0 else 0.0


def percentile(values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..100) of a non-empty sequence."""
    ordered = sorted(values)
    rank = max(1, math.ceil(q / 100 * len(ordered)))
    return ordered[rank - 1]


def first_answer_after(records: Sequence[Record], host: str, since: float) -> float | None:
    """Seconds from `since` to the first answer from `host` (negative if it came earlier)."""
    answered = [r.done for r in records if r.ok and r.host == host]
    return min(answered) - since if answered else None


def last_answer_after(records: Sequence[Record], host: str, since: float) -> float | None:
    """Seconds from `since` to the last answer from `host` (negative if all came earlier)."""
    answered = [r.done for r in records if r.ok and r.host == host]
    return max(answered) - since if answered else None


def render_rows(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    table = [list(header), *[list(r) for r in rows]]
    widths = [max(len(row[i]) for row in table) for i in range(len(header))]
    lines = [" | ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)) for row in table]
    lines.insert(1, "-+-".join("-" * w for w in widths))
    return "\n".join(line.rstrip() for line in lines)


def throughput_table(results: Sequence[tuple[str, WrkResult | str]]) -> str:
    """One row per target: wrk's numbers, or why there are none."""
    rows = []
    for target, result in results:
        if isinstance(result, str):
            rows.append([target, "n/a", "n/a", "n/a", "n/a", result])
        else:
            rows.append(
                [
                    target,
                    f"{result.requests_per_second:,.0f}",
                    f"{result.p50_ms:.2f}",
                    f"{result.p99_ms:.2f}",
                    f"{result.requests:,}",
                    str(result.errors),
                ]
            )
    return render_rows(["target", "req/s", "p50 ms", "p99 ms", "requests", "errors"], rows)


def timing_table(rows: Sequence[tuple[str, Sequence[float | None]]]) -> str:
    """p50/max of each latency, with how many samples had no answer at all."""
    out = []
    for what, samples in rows:
        values = [s for s in samples if s is not None]
        missing = len(samples) - len(values)
        if values:
            p50, worst = percentile(values, 50), max(values)
            mark = "ok" if worst < TARGET_SECONDS and not missing else "MISS"
            cells = [f"{p50:.3f}", f"{worst:.3f}", f"< {TARGET_SECONDS:.0f} s {mark}"]
        else:
            cells = ["n/a", "n/a", "MISS"]
        out.append([what, str(len(samples)), *cells, str(missing)])
    return render_rows(["measure", "samples", "p50 s", "max s", "target", "no answer"], out)


def disruption_table(disruptions: Sequence[Disruption | tuple[str, str, str]]) -> str:
    """One row per disruption; a (system, what, reason) tuple for one that did not run."""
    rows = []
    for d in disruptions:
        if isinstance(d, tuple):
            rows.append([d[0], d[1], "n/a", "n/a", "n/a", "n/a", d[2]])
            continue
        mark = "ok" if d.failed == 0 else "MISS"
        rows.append(
            [
                d.system,
                d.what,
                f"{d.sent:,}",
                f"{d.rate:.0f}",
                f"{d.action_seconds:.1f}",
                str(d.failed),
                f"0 {mark}",
            ]
        )
    return render_rows(
        ["system", "disruption", "sent", "req/s", "took s", "failed", "target"], rows
    )


def failure_summary(d: Disruption, limit: int = 3) -> list[str]:
    """Lines naming the kinds of failure and the first few, timed from the stream's start."""
    failures = [r for r in d.records if not r.ok]
    if not failures:
        return []
    start = d.records[0].send
    kinds = Counter(r.error.split(":")[0] for r in failures)
    lines = [
        f"{d.system} / {d.what}: {d.failed} failed: "
        + ", ".join(f"{n} x {k}" for k, n in kinds.most_common())
    ]
    lines += [f"    at {r.send - start:7.2f} s: {r.error}" for r in failures[:limit]]
    return lines
