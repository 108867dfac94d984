"""The chaos bench's bookkeeping and table (pure): which fault each request and write fell in,
and per fault kind what failed, what was replaced, what ran twice and how long healing took.

The bench hands in plain records (monotonic times, booleans, counts); nothing here touches a
process or Docker, so it is tested with plain numbers (tests/bench/test_chaos_report.py).
A request or write belongs to the latest fault injected at or before it ("steady" before the
first); a fault's convergence time runs from its injection (a SIGSTOP's or a full disk's hold
included) until the cluster is whole again.
"""

from __future__ import annotations

import bisect
import statistics
from collections.abc import Sequence
from dataclasses import dataclass

STEADY = "steady"


@dataclass(frozen=True, slots=True)
class Outcome:
    """One request or one write: when it was sent, and whether it succeeded."""

    at: float
    ok: bool


@dataclass(frozen=True, slots=True)
class FaultResult:
    kind: str
    at: float
    # Seconds from injection until whole again; None when it did not converge in time.
    converge_s: float | None
    # Pods of the workload gone and replaced by new ones (no fault kills a machine, so any
    # replacement is needless: the containers were alive).
    replaced: int
    # The most containers running beyond one per pod, or beyond the replica count once
    # settled, seen while this fault was being healed.
    duplicates: int


@dataclass(frozen=True, slots=True)
class Row:
    kind: str
    faults: int
    requests_failed: int
    requests: int
    writes_failed: int
    writes: int
    replaced: int
    duplicates: int
    converge_median: float | None
    converge_worst: float | None
    not_converged: int


def _owner(times: Sequence[float], kinds: Sequence[str], at: float) -> str:
    i = bisect.bisect_right(times, at) - 1
    return kinds[i] if i >= 0 else STEADY


def rows(
    faults: Sequence[FaultResult], requests: Sequence[Outcome], writes: Sequence[Outcome]
) -> list[Row]:
    """One row per fault kind (and "steady" for the time before the first fault)."""
    ordered = sorted(faults, key=lambda f: f.at)
    times = [f.at for f in ordered]
    kinds = [f.kind for f in ordered]
    counts: dict[str, list[int]] = {}
    for bucket, outcomes in ((0, requests), (2, writes)):
        for o in outcomes:
            c = counts.setdefault(_owner(times, kinds, o.at), [0, 0, 0, 0])
            c[bucket] += not o.ok
            c[bucket + 1] += 1
    result = []
    for kind in [STEADY, *sorted({f.kind for f in ordered})]:
        mine = [f for f in ordered if f.kind == kind]
        c = counts.get(kind, [0, 0, 0, 0])
        if kind == STEADY and not c[1] and not c[3]:
            continue
        times_ok = [f.converge_s for f in mine if f.converge_s is not None]
        result.append(
            Row(
                kind=kind,
                faults=len(mine),
                requests_failed=c[0],
                requests=c[1],
                writes_failed=c[2],
                writes=c[3],
                replaced=sum(f.replaced for f in mine),
                duplicates=sum(f.duplicates for f in mine),
                converge_median=statistics.median(times_ok) if times_ok else None,
                converge_worst=max(times_ok) if times_ok else None,
                not_converged=len(mine) - len(times_ok),
            )
        )
    return result


def _seconds(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}"


def render(table: Sequence[Row], acknowledged: int, lost: Sequence[str]) -> str:
    header = [
        "fault",
        "n",
        "requests failed",
        "writes failed",
        "pods replaced",
        "duplicates",
        "converge s median (worst)",
        "not converged",
    ]
    lines = [header]
    for r in table:
        lines.append(
            [
                r.kind,
                str(r.faults),
                f"{r.requests_failed}/{r.requests}",
                f"{r.writes_failed}/{r.writes}",
                str(r.replaced),
                str(r.duplicates),
                f"{_seconds(r.converge_median)} ({_seconds(r.converge_worst)})"
                if r.faults
                else "-",
                str(r.not_converged),
            ]
        )
    widths = [max(len(line[i]) for line in lines) for i in range(len(header))]
    out = [
        " | ".join(cell.ljust(w) for cell, w in zip(line, widths, strict=True)) for line in lines
    ]
    out.insert(1, "-+-".join("-" * w for w in widths))
    shown = ", ".join(lost[:10]) + (" ..." if len(lost) > 10 else "")
    out.append(
        f"acknowledged writes lost: {len(lost)} of {acknowledged}" + (f" ({shown})" if lost else "")
    )
    return "\n".join(out)
