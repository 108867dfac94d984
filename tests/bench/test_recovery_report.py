"""The recovery bench's table and results lines from plain numbers: percentiles, target
marks, duplicates, pauses."""

from __future__ import annotations

import pytest

from tests.bench.recovery import parse_args
from tests.bench.recovery_report import (
    PauseTrial,
    Row,
    duplicates_line,
    figures,
    pause_line,
    percentile,
    render_table,
    verdict,
)


def test_percentile_interpolates_between_closest_ranks() -> None:
    values = [float(v) for v in range(1, 11)]  # 1..10

    assert percentile(values, 50) == 5.5
    assert percentile(values, 99) == pytest.approx(9.91)
    assert percentile([3.0], 99) == 3.0


def test_percentile_of_nothing_is_an_error() -> None:
    with pytest.raises(ValueError):
        percentile([], 50)


def test_targets_are_checked_on_p50_or_p99() -> None:
    assert verdict(Row("kill", [0.5, 0.6, 2.0], 1.5)) == "p50 < 1.5 s: ok"
    assert verdict(Row("node", [4.0, 4.2, 6.0], 5.0, "p99")) == "p99 < 5 s: MISS"
    assert verdict(Row("swarm", [5.1])) == ""
    assert verdict(Row("kill", [], 1.5)) == "n/a"


def test_table_has_one_line_per_scenario_under_the_header() -> None:
    table = render_table([Row("a", [1.0, 3.0], 2.5), Row("b", [])])
    lines = table.splitlines()

    assert lines[0].split(" | ")[0].strip() == "scenario"
    assert lines[2].startswith("a ") and "2.00" in lines[2] and "ok" in lines[2]
    assert "n/a" in lines[3]


def test_any_duplicate_after_heal_misses_the_target() -> None:
    assert duplicates_line([0, 0, 0]).endswith("0 (target 0: ok)")
    assert "1 (target 0: MISS)" in duplicates_line([0, 1, 0])


def test_a_master_pause_is_ok_only_when_no_pod_was_replaced_and_no_request_failed() -> None:
    calm = [PauseTrial(0, 0, 600), PauseTrial(0, 0, 590)]
    rough = [PauseTrial(0, 0, 600), PauseTrial(4, 12, 580)]

    assert pause_line("master paused 6 s", calm) == (
        "master paused 6 s (2 trials): pods replaced 0/0, requests failed 0/0 of 1190 "
        "(target 0 and 0: ok)"
    )
    assert pause_line("master paused 6 s", rough).endswith("(target 0 and 0: MISS)")
    assert pause_line("master paused 30 s", []) == "master paused 30 s: n/a"


def test_figures_carry_each_rows_p50_and_p99_the_duplicates_and_each_pause() -> None:
    rows = [Row("container kill", [1.0, 2.0, 3.0], 0.5, "p99"), Row("  node  kill", [])]
    pauses = [
        ("master paused 6 s", [PauseTrial(0, 0, 600), PauseTrial(2, 5, 590)]),
        ("master paused 30 s", []),
    ]

    got = {f.name: f for f in figures(rows, [0, 1, 0], pauses)}

    assert sorted(got) == [
        "recovery container kill p50",
        "recovery container kill p99",
        "recovery duplicates after heal (max)",
        "recovery master paused 6 s: pods replaced (max)",
        "recovery master paused 6 s: requests failed",
    ]
    p50 = got["recovery container kill p50"]
    assert (p50.value, p50.unit) == (2.0, "s")
    assert p50.note == "3 trials, min 1.00, max 3.00; p99 < 0.5 s: MISS"
    assert got["recovery container kill p99"].value == pytest.approx(2.98)
    assert got["recovery duplicates after heal (max)"].value == 1
    assert got["recovery master paused 6 s: pods replaced (max)"].value == 2
    failed = got["recovery master paused 6 s: requests failed"]
    assert failed.value == 5 and failed.note.endswith("of 1190 sent")


def test_nothing_run_gives_no_figures_and_indents_are_no_part_of_a_name() -> None:
    assert figures([Row("kill", [])], [], []) == []
    [p50, _] = figures([Row("  of which  engine", [1.0])], [], [])
    assert p50.name == "recovery of which engine p50"


def test_results_are_recorded_unless_no_record() -> None:
    assert parse_args([]).no_record is False
    assert parse_args(["--no-record"]).no_record is True
