"""Percentiles and the printed table of the recovery benchmark (pure).

tests/bench/recovery.py hands in one duration per trial per scenario (and the
duplicates it counted after each heal); this module turns them into p50/p99
cells, marks each row against the issue's target, and renders a plain table;
`figures` turns the same numbers into the lines every bench appends to
tests/bench/results.jsonl (tests/bench/results.py). Nothing here touches Docker
or processes, so it is tested with plain numbers.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from tests.bench.results import Figure


@dataclass(frozen=True, slots=True)
class Row:
    """One scenario: its label, the trials' seconds, and the target (None: just shown)."""

    label: str
    seconds: Sequence[float]
    # The p50 (or p99, see target_on) must stay under this, in seconds.
    target: float | None = None
    target_on: str = "p50"


def percentile(values: Sequence[float], q: float) -> float:
    """The q-th percentile (0-100), linear between closest ranks (numpy's default)."""
    if not values:
        raise ValueError("percentile of no values")
    ordered = sorted(values)
    rank = (len(ordered) - 1) * q / 100.0
    low, high = math.floor(rank), math.ceil(rank)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def verdict(row: Row) -> str:
    if row.target is None:
        return ""
    if not row.seconds:
        return "n/a"
    value = percentile(row.seconds, 99 if row.target_on == "p99" else 50)
    mark = "ok" if value < row.target else "MISS"
    return f"{row.target_on} < {row.target:g} s: {mark}"


def render_table(rows: Sequence[Row]) -> str:
    header = ["scenario", "trials", "p50 s", "p99 s", "min s", "max s", "target"]
    table = [header]
    for row in rows:
        if row.seconds:
            cells = [
                f"{percentile(row.seconds, 50):.2f}",
                f"{percentile(row.seconds, 99):.2f}",
                f"{min(row.seconds):.2f}",
                f"{max(row.seconds):.2f}",
            ]
        else:
            cells = ["n/a"] * 4
        table.append([row.label, str(len(row.seconds)), *cells, verdict(row)])
    widths = [max(len(r[i]) for r in table) for i in range(len(header))]
    lines = [" | ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)) for r in table]
    lines.insert(1, "-+-".join("-" * w for w in widths))
    return "\n".join(line.rstrip() for line in lines)


def duplicates_line(after_heal: Sequence[int]) -> str:
    """The duplicates verdict: running copies beyond `replicas` once a heal was complete."""
    if not after_heal:
        return "duplicates after heal: n/a"
    worst = max(after_heal)
    mark = "ok" if worst == 0 else "MISS"
    return (
        f"duplicates observed after heal (copies beyond replicas, once the stale copies were "
        f"fenced; max over {len(after_heal)} trials): {worst} (target 0: {mark})"
    )


@dataclass(frozen=True, slots=True)
class PauseTrial:
    """One master pause under a request stream: what it cost the workloads."""

    pods_replaced: int
    requests_failed: int
    requests: int


def pause_line(label: str, trials: Sequence[PauseTrial]) -> str:
    """A master-pause row: pods replaced and requests failed per trial (target 0 and 0)."""
    if not trials:
        return f"{label}: n/a"
    replaced = [t.pods_replaced for t in trials]
    failed = [t.requests_failed for t in trials]
    sent = sum(t.requests for t in trials)
    mark = "ok" if max(replaced) == 0 and max(failed) == 0 else "MISS"
    return (
        f"{label} ({len(trials)} trials): pods replaced {'/'.join(map(str, replaced))}, "
        f"requests failed {'/'.join(map(str, failed))} of {sent} (target 0 and 0: {mark})"
    )


def figures(
    rows: Sequence[Row],
    duplicates: Sequence[int],
    pauses: Sequence[tuple[str, Sequence[PauseTrial]]],
) -> list[Figure]:
    """The printed table's numbers as results.jsonl figures: a row's p50 and p99 (its trials,
    min, max and verdict in the note), the duplicates' worst, and per pause or restart the
    worst pods replaced and the requests failed. A scenario not run gives no figure."""
    out: list[Figure] = []
    for row in rows:
        if not row.seconds:
            continue
        note = (
            f"{len(row.seconds)} trials, min {min(row.seconds):.2f}, max {max(row.seconds):.2f}"
            + (f"; {verdict(row)}" if row.target is not None else "")
        )
        name = "recovery " + " ".join(row.label.split())  # the table's indents are not names
        out.append(Figure(f"{name} p50", percentile(row.seconds, 50), "s", note))
        out.append(Figure(f"{name} p99", percentile(row.seconds, 99), "s", note))
    if duplicates:
        out.append(
            Figure(
                "recovery duplicates after heal (max)",
                max(duplicates),
                "pods",
                f"{len(duplicates)} trials; target 0",
            )
        )
    for label, trials in pauses:
        if not trials:
            continue
        sent = sum(t.requests for t in trials)
        note = f"{len(trials)} trials; target 0"
        out.append(
            Figure(
                f"recovery {label}: pods replaced (max)",
                max(t.pods_replaced for t in trials),
                "pods",
                note,
            )
        )
        out.append(
            Figure(
                f"recovery {label}: requests failed",
                sum(t.requests_failed for t in trials),
                "requests",
                f"{note}; of {sent} sent",
            )
        )
    return out
