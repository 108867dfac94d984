"""The bench's table: summaries, ratios and target marks from plain numbers."""

from __future__ import annotations

from tests.bench import report


def test_summarize_takes_median_min_and_max() -> None:
    summary = report.summarize([3.0, 1.0, 2.0, 10.0])

    assert summary == report.Summary(median=2.5, low=1.0, high=10.0, trials=4)


def test_summarize_without_trials_is_none() -> None:
    assert report.summarize([]) is None


def test_ratio_is_pinnace_median_over_the_other_median() -> None:
    pinnace = report.summarize([1.0, 2.0, 3.0])
    swarm = report.summarize([8.0])

    assert report.ratio(pinnace, swarm) == 0.25
    assert report.ratio(pinnace, None) is None


def test_table_marks_each_target_met_or_missed() -> None:
    results = {
        report.PINNACE: {3: [1.0, 1.2, 0.8], 30: [9.0]},
        report.DOCKER_RUN: {3: [2.0, 2.0, 2.0], 30: [6.0]},
        report.PARALLEL_RUN: {3: [0.95], 30: [8.0]},
        report.SWARM: {3: [2.0], 30: [12.0]},
    }

    table = report.render_table([3, 30], results).splitlines()

    assert table[0].split(" | ")[0].strip() == "N"
    row3 = [cell.strip() for cell in table[2].split("|")]
    row30 = [cell.strip() for cell in table[3].split("|")]
    assert row3 == [
        "3",
        "1.00 (0.80-1.20)",
        "2.00 (2.00-2.00)",
        "0.95",
        "2.00",
        "0.50 ok",
        "1.05 ok",
        "0.50 MISS",
    ]
    assert row30 == ["30", "9.00", "6.00", "8.00", "12.00", "1.50 MISS", "1.12 MISS", "0.75 MISS"]


def test_table_shows_missing_systems_as_na() -> None:
    table = report.render_table([3], {report.DOCKER_RUN: {3: [2.0]}})

    assert [c.strip() for c in table.splitlines()[2].split("|")] == [
        "3",
        "n/a",
        "2.00",
        "n/a",
        "n/a",
        "n/a",
        "n/a",
        "n/a",
    ]


def test_source_lines_set_this_tree_beside_the_other_checkout() -> None:
    results = {
        report.PINNACE: {3: [1.0, 1.2, 0.9], 30: [9.0]},
        report.SOURCE: {3: [1.5, 1.4, 1.6]},
    }

    lines = report.source_lines([3, 30], results)

    # No --source trials at N=30: no line for it.
    assert lines == [
        "N=3: pinnace 1.00 (0.90-1.20), pinnace --source 1.50 (1.40-1.60), this/source 0.67"
    ]
