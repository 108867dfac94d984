"""The master's read backlog (pure): the fleet's send -> read delays of heartbeats."""

from __future__ import annotations

import pytest

from master.controllers.read_backlog import (
    ACTIVE_SECONDS,
    MAX_BACKLOG_SECONDS,
    WINDOW_SECONDS,
    ReadBacklog,
)

WALL = 1_700_000_000.0
MONO = 1000.0


def _fleet(backlog: ReadBacklog, nodes: int, at: float, delay: float, skew: float = 0.0) -> None:
    """Every node's beat read at `at` (seconds from the start), sent `delay` before it by a
    clock `skew` seconds behind the master's."""
    for i in range(nodes):
        backlog.observe(f"n{i}", WALL + at - delay - skew, WALL + at, MONO + at)


def test_a_fleet_read_on_time_is_not_behind() -> None:
    b = ReadBacklog()
    _fleet(b, 100, 0.0, 0.0)
    _fleet(b, 100, 1.0, 0.3)
    assert b.backlog(MONO + 1.0).excuse == 0.0


def test_a_fleet_read_late_is_behind_by_its_slow_tenth_plus_the_time_since_the_last_read() -> None:
    b = ReadBacklog()
    _fleet(b, 50, 0.0, 0.0)  # the offsets: each node's path read on time once
    for i in range(50):  # then read 10..14.9 s late
        b.observe(f"n{i}", WALL + 30.0 - (10.0 + i / 10), WALL + 30.0, MONO + 30.0)
    found = b.backlog(MONO + 30.0)
    assert found.median == pytest.approx(12.5)
    assert found.excuse == pytest.approx(14.5)  # the 90th percentile
    # Nothing more read for 4 s: the master known to be behind is 4 s further behind.
    assert b.backlog(MONO + 34.0).excuse == pytest.approx(18.5)


def test_the_newest_reads_make_the_backlog_not_each_nodes_newest() -> None:
    # A backlog growing: 30 nodes read on time a second ago, then 5 read 6 s late now.
    b = ReadBacklog()
    _fleet(b, 30, 0.0, 0.0)
    _fleet(b, 30, 3.0, 0.0)
    for i in range(5):
        b.observe(f"n{i}", WALL + 4.5 - 6.0, WALL + 4.5, MONO + 4.5)
    assert b.backlog(MONO + 4.5).excuse == pytest.approx(6.0)


def test_a_cluster_of_two_nodes_is_judged_as_before() -> None:
    b = ReadBacklog()
    _fleet(b, 2, 0.0, 0.0)
    _fleet(b, 2, 1.0, 30.0)
    assert b.backlog(MONO + 1.0).excuse == 0.0


def test_one_node_read_late_or_skewed_opens_no_excuse() -> None:
    b = ReadBacklog()
    _fleet(b, 20, 0.0, 0.0)
    b.observe("n0", WALL + 1.0 - 80.0, WALL + 1.0, MONO + 1.0)  # one stream 80 s behind
    _fleet(b, 20, 1.0, 0.1)
    b.observe("late", WALL + 1.0 - 500.0, WALL + 1.0, MONO + 1.0)  # a clock 500 s behind
    assert b.backlog(MONO + 1.0).excuse == 0.0


def test_a_whole_fleet_with_skewed_clocks_is_not_behind_its_offsets_take_the_skew_out() -> None:
    b = ReadBacklog()
    for t in range(10):  # every agent's clock 30 s behind the master's, beats on time
        _fleet(b, 50, float(t), 0.05, skew=30.0)
    assert b.backlog(MONO + 9.0).excuse == 0.0
    # The same fleet read 5 s late: 5 s, not 35.
    _fleet(b, 50, 10.0, 5.05, skew=30.0)
    assert b.backlog(MONO + 10.0).excuse == pytest.approx(5.0)


def test_the_median_must_pass_the_threshold() -> None:
    b = ReadBacklog()
    _fleet(b, 10, 0.0, 0.0)
    for i in range(10):  # 4 of 10 nodes 30 s late, the rest on time: median on time
        b.observe(f"n{i}", WALL + 1.0 - (30.0 if i < 4 else 0.2), WALL + 1.0, MONO + 1.0)
    assert b.backlog(MONO + 1.0).median <= ACTIVE_SECONDS
    assert b.backlog(MONO + 1.0).excuse == 0.0


def test_only_the_newest_window_counts_and_the_excuse_is_bounded() -> None:
    b = ReadBacklog()
    _fleet(b, 10, 0.0, 0.0)
    _fleet(b, 10, 1.0, 40.0)
    # Read on time again, later than the window: the old late reads no longer count.
    _fleet(b, 10, 1.0 + WINDOW_SECONDS + 0.5, 0.1)
    assert b.backlog(MONO + 7.0).excuse == 0.0
    # Behind, then nothing read at all: bounded, and over once nothing was read for long.
    c = ReadBacklog()
    _fleet(c, 10, 0.0, 0.0)
    _fleet(c, 10, 1.0, 40.0)
    assert c.backlog(MONO + 100.0).excuse == MAX_BACKLOG_SECONDS
    assert c.backlog(MONO + 1.0 + MAX_BACKLOG_SECONDS + 0.1).excuse == 0.0


def test_beats_without_a_send_time_count_nothing() -> None:
    b = ReadBacklog()
    for i in range(10):
        assert b.observe(f"n{i}", 0.0, WALL, MONO) == 0.0
    assert b.backlog(MONO).nodes == 0
    assert b.backlog(MONO).excuse == 0.0


def test_a_node_first_heard_during_a_backlog_under_reports_it() -> None:
    """Its first beat sets its offset: the backlog then in it is taken for skew (the safe
    side: less excuse), until a beat read sooner lowers the offset."""
    b = ReadBacklog()
    assert b.observe("n0", WALL - 30.0, WALL, MONO) == 0.0
    assert b.observe("n0", WALL + 1.0 - 0.1, WALL + 1.0, MONO + 1.0) == 0.0
    assert b.observe("n0", WALL + 2.0 - 10.0, WALL + 2.0, MONO + 2.0) == pytest.approx(9.9)
