"""The results file's line format: one JSON object per figure, with what makes it comparable."""

from __future__ import annotations

import json
from pathlib import Path

from tests.bench.results import Figure, lines, record, table


def test_one_line_per_figure_with_command_load_and_commit() -> None:
    figures = [Figure("a", 1.5, "s", "median of 3"), Figure("b", 2.0, "1/s")]

    rows = [json.loads(line) for line in lines(figures, "python -m x --y", at=0.0)]

    assert [r["name"] for r in rows] == ["a", "b"]
    assert rows[0]["value"] == 1.5 and rows[0]["unit"] == "s"
    assert rows[0]["note"] == "median of 3" and "note" not in rows[1]
    assert all(r["command"] == "python -m x --y" for r in rows)
    assert all(r["time"] == "1970-01-01T00:00:00Z" for r in rows)
    assert all(len(r["load_average"]) == 3 for r in rows)
    assert all(r["commit"] for r in rows)


def test_record_appends(tmp_path: Path) -> None:
    path = tmp_path / "results.jsonl"
    record([Figure("a", 1.0, "s")], "cmd", path)
    record([Figure("b", 2.0, "s")], "cmd", path)

    assert [json.loads(x)["name"] for x in path.read_text().splitlines()] == ["a", "b"]


def test_table_names_every_figure() -> None:
    out = table([Figure("apply", 1.0, "s"), Figure("cpu", 0.25, "cores")])

    assert "apply" in out and "cpu" in out and "0.250" in out
