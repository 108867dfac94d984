"""The start-shapes bench's order and summaries from plain numbers (no engine)."""

from __future__ import annotations

import pytest

from tests.bench.start_shapes import (
    SHAPES,
    Timing,
    against_published,
    main,
    rotated,
    summary,
    table,
    timing,
)


def test_each_round_starts_one_shape_further_so_none_always_follows_another() -> None:
    orders = [rotated(SHAPES, r) for r in range(len(SHAPES) + 1)]

    assert orders[0] == list(SHAPES)
    assert orders[1] == [*SHAPES[1:], SHAPES[0]]
    # Every shape comes first once per cycle, then the cycle repeats.
    assert sorted(o[0] for o in orders[: len(SHAPES)]) == sorted(SHAPES)
    assert orders[len(SHAPES)] == orders[0]


def test_a_summary_is_median_p90_and_worst_in_milliseconds() -> None:
    # p90 between the closest ranks, as the recovery report takes it.
    assert summary([0.3, 0.1, 0.2]) == "200 / 280 / 300"
    assert summary([]) == "-"


def test_shapes_are_compared_with_the_published_port_round_by_round() -> None:
    # bridge+port is slow in round 1 and fast in round 2; joined is 0.15 s faster in both.
    calls = {shape: [0.9, 0.3] for shape in SHAPES}
    calls["joined"] = [0.75, 0.15]
    calls["network"] = [1.0, 0.2]

    lines = against_published(calls)

    assert f"joined - {SHAPES[0]}, per round: median -150 ms, faster in 2/2" in lines
    assert f"network - {SHAPES[0]}, per round: median +0 ms, faster in 1/2" in lines
    assert len(lines) == len(SHAPES) - 1


@pytest.mark.parametrize("given", ["0", "-1", "x"])
def test_the_rounds_are_checked_before_any_engine_call(
    given: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as stopped:
        main(["--rounds", given])

    assert stopped.value.code == 2
    assert "--rounds" in capsys.readouterr().err


def test_a_timing_splits_the_span_at_the_network_events_when_there_are_any() -> None:
    stamps = {"die": 100.0, "disconnect": 100.2, "connect": 100.25, "start": 100.5}

    t = timing(stamps, sent=100.21, call=0.3)

    assert t.call == 0.3
    assert round(t.die_to_start, 3) == 0.5
    assert t.die_to_disconnect is not None and round(t.die_to_disconnect, 3) == 0.2
    assert t.sent_to_connect is not None and round(t.sent_to_connect, 3) == 0.04
    assert t.connect_to_start is not None and round(t.connect_to_start, 3) == 0.25
    # A container in another's namespace has no network events of its own.
    alone = timing({"die": 100.0, "start": 100.15}, sent=100.01, call=0.14)
    assert (alone.die_to_disconnect, alone.sent_to_connect, alone.connect_to_start) == (
        None,
        None,
        None,
    )


def test_the_table_has_a_row_a_shape_and_a_dash_where_no_event_came() -> None:
    found = {
        "bridge": [Timing(0.3, 0.45, 0.1, 0.3, 0.02)],
        "joined": [Timing(0.15, 0.16, None, None, None)],
    }

    lines = table(found).splitlines()

    assert lines[1] == "bridge | 300 / 300 / 300 | 450 / 450 / 450 | 100 / 100 / 100 | " + (
        "20 / 20 / 20 | 300 / 300 / 300"
    )
    assert lines[2] == "joined | 150 / 150 / 150 | 160 / 160 / 160 | - | - | -"
