"""The recovery bench's table from plain numbers: percentiles, target marks, duplicates."""

from __future__ import annotations

import pytest

from tests.bench.recovery_report import (
    PauseTrial,
    Row,
    duplicates_line,
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
