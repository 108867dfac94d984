"""One results file for every bench: one JSON line per figure, so runs compare over time.

`record(figures, command)` appends to tests/bench/results.jsonl (ignored by git) one
line per figure with its name, value and unit, the command that produced it, the
machine's load average when it was taken (the machine is shared: a figure without its
load is not comparable) and the git commit of the code measured. `table(figures)`
renders the same figures for the terminal.
"""

from __future__ import annotations

import json
import os
import subprocess
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
RESULTS = REPO / "tests" / "bench" / "results.jsonl"


@dataclass(frozen=True, slots=True)
class Figure:
    name: str
    value: float
    unit: str
    # What else a reader needs beside the value ("median of 3, worst 2.1").
    note: str = ""


def git_commit() -> str:
    """The commit measured, with `+dirty` when the work tree has changes."""
    try:
        head = subprocess.run(
            ["git", "rev-parse", "--short=12", "HEAD"],
            cwd=REPO,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=REPO,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return head + ("+dirty" if dirty else "")


def load_average() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


def lines(figures: Sequence[Figure], command: str, *, at: float | None = None) -> list[str]:
    """The JSON lines `record` appends (one per figure)."""
    stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(at if at is not None else time.time()))
    commit, load = git_commit(), load_average()
    out = []
    for f in figures:
        row: dict[str, object] = {
            "time": stamp,
            "name": f.name,
            "value": round(f.value, 6),
            "unit": f.unit,
            "command": command,
            "load_average": load,
            "commit": commit,
        }
        if f.note:
            row["note"] = f.note
        out.append(json.dumps(row, sort_keys=True))
    return out


def record(figures: Sequence[Figure], command: str, path: Path = RESULTS) -> None:
    with path.open("a") as fh:
        for line in lines(figures, command):
            fh.write(line + "\n")


def table(figures: Sequence[Figure]) -> str:
    width = max((len(f.name) for f in figures), default=4)
    rows = [f"{'figure':<{width}} | {'value':>10} | unit    | note"]
    rows.append("-" * len(rows[0]))
    for f in figures:
        rows.append(f"{f.name:<{width}} | {f.value:>10.3f} | {f.unit:<7} | {f.note}")
    return "\n".join(rows)
