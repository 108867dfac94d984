"""Summaries and the printed table of the apply-to-running benchmark (pure).

The bench's runners hand in one duration per trial, keyed by system and replica
count; this module turns them into median/min/max cells, the pinnace ratios
against plain `docker run` and Swarm, and a plain-text table with the targets
(pinnace <= docker run; pinnace <= 1/4 of Swarm). Nothing here touches Docker or
processes, so it is tested with plain numbers.
"""

from __future__ import annotations

import statistics
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

PINNACE = "pinnace"
DOCKER_RUN = "docker run"
PARALLEL_RUN = "parallel run"
SWARM = "swarm"
SYSTEMS = (PINNACE, DOCKER_RUN, PARALLEL_RUN, SWARM)
# pinnace from another checkout (`--source DIR`), timed in the same trials: a before/after
# under one load.
SOURCE = "pinnace --source"
# The order a trial runs the systems in: the two pinnaces side by side.
TRIAL_ORDER = (PINNACE, SOURCE, DOCKER_RUN, PARALLEL_RUN, SWARM)

# The targets: pinnace/docker-run must be at most 1.0, pinnace/swarm at most 0.25.
TARGET_VS_DOCKER_RUN = 1.0
TARGET_VS_SWARM = 0.25
# N `docker run` at once is the engine's own limit: pinnace within 10% of it.
TARGET_VS_PARALLEL_RUN = 1.1


@dataclass(frozen=True, slots=True)
class Summary:
    """The trials of one system at one replica count, in seconds."""

    median: float
    low: float
    high: float
    trials: int


def summarize(durations: Sequence[float]) -> Summary | None:
    """Median, min and max of the trials; None when no trial finished."""
    if not durations:
        return None
    return Summary(
        median=statistics.median(durations),
        low=min(durations),
        high=max(durations),
        trials=len(durations),
    )


def ratio(pinnace: Summary | None, other: Summary | None) -> float | None:
    """pinnace's median over the other system's median (None if either is missing)."""
    if pinnace is None or other is None or other.median <= 0:
        return None
    return pinnace.median / other.median


def format_cell(summary: Summary | None) -> str:
    if summary is None:
        return "n/a"
    if summary.trials == 1:
        return f"{summary.median:.2f}"
    return f"{summary.median:.2f} ({summary.low:.2f}-{summary.high:.2f})"


def format_ratio(value: float | None, target: float) -> str:
    # The mark says at a glance whether the row meets the target.
    if value is None:
        return "n/a"
    mark = "ok" if value <= target else "MISS"
    return f"{value:.2f} {mark}"


def render_table(
    replica_counts: Sequence[int],
    results: Mapping[str, Mapping[int, Sequence[float]]],
) -> str:
    """The table: N | pinnace s | docker run s | parallel run s | swarm s | pinnace/docker-run |
    pinnace/parallel | pinnace/swarm."""
    header = [
        "N",
        "pinnace s",
        "docker run s",
        "parallel run s",
        "swarm s",
        "pinnace/docker-run",
        "pinnace/parallel",
        "pinnace/swarm",
    ]
    rows = [header]
    for n in replica_counts:
        cells = {s: summarize(results.get(s, {}).get(n, [])) for s in SYSTEMS}
        rows.append(
            [
                str(n),
                format_cell(cells[PINNACE]),
                format_cell(cells[DOCKER_RUN]),
                format_cell(cells[PARALLEL_RUN]),
                format_cell(cells[SWARM]),
                format_ratio(ratio(cells[PINNACE], cells[DOCKER_RUN]), TARGET_VS_DOCKER_RUN),
                format_ratio(ratio(cells[PINNACE], cells[PARALLEL_RUN]), TARGET_VS_PARALLEL_RUN),
                format_ratio(ratio(cells[PINNACE], cells[SWARM]), TARGET_VS_SWARM),
            ]
        )
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    lines = [" | ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)) for row in rows]
    lines.insert(1, "-+-".join("-" * w for w in widths))
    return "\n".join(line.rstrip() for line in lines)


def source_lines(
    replica_counts: Sequence[int], results: Mapping[str, Mapping[int, Sequence[float]]]
) -> list[str]:
    """Per N, this tree's pinnace beside the `--source` checkout's, and their ratio."""
    lines = []
    for n in replica_counts:
        this = summarize(results.get(PINNACE, {}).get(n, []))
        source = summarize(results.get(SOURCE, {}).get(n, []))
        if source is None:
            continue
        mine = ratio(this, source)
        lines.append(
            f"N={n}: pinnace {format_cell(this)}, pinnace --source {format_cell(source)},"
            f" this/source {'n/a' if mine is None else f'{mine:.2f}'}"
        )
    return lines


def targets_note() -> str:
    return (
        "targets: pinnace <= plain docker run (pinnace/docker-run <= "
        f"{TARGET_VS_DOCKER_RUN:.2f}); pinnace within 1.1x of N docker runs started at once "
        f"(pinnace/parallel <= {TARGET_VS_PARALLEL_RUN:.2f}); pinnace <= 1/4 of Swarm "
        "(pinnace/swarm <= "
        f"{TARGET_VS_SWARM:.2f}). Cells: median (min-max) over the trials, seconds from "
        "the ask to N replicas running."
    )
