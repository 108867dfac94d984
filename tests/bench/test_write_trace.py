"""Splitting the kube_api bench's slow writes by what they waited on (write_trace.py)."""

from __future__ import annotations

import pytest

from tests.bench.write_trace import explain, summary


def test_a_write_is_split_into_outside_lock_store_and_loop() -> None:
    timeline = [
        ["req", 10.010, 10.090, "PATCH", "/x"],
        ["commit", 10.012, 10.030, 10.085],
        ["store", 10.031, 10.080, 3],
        ["store", 9.0, 9.5, 100],  # another time: not this write's
    ]

    (slow,) = explain([(10.0, 0.1), (11.0, 0.01)], timeline, 0.05)

    assert slow.outside == pytest.approx(0.02)
    assert slow.lock == pytest.approx(0.018)
    assert slow.store == pytest.approx(0.049)
    assert slow.loop == pytest.approx(0.08 - 0.018 - 0.049)
    assert slow.cause == "store"


def test_what_overlapped_names_the_cause() -> None:
    timeline = [
        ["req", 20.0, 20.1, "PATCH", "/x"],
        ["gc", 20.01, 20.09, 2, 0.08],
        ["req", 30.06, 30.1, "PATCH", "/x"],
        ["heap", 29.99, 30.04, "sweep"],
        ["req", 40.0, 40.1, "PATCH", "/x"],
        ["lag", 40.08, 0.07, "starved"],
    ]

    slow = explain([(20.0, 0.1), (30.0, 0.1), (40.0, 0.1)], timeline, 0.05)

    assert [w.cause for w in slow] == ["loop (gc)", "outside (heap sweep)", "loop (starved)"]
    assert slow[2].starved == pytest.approx(0.07)
    assert summary(slow)[0].split()[0] == "1"


def test_a_write_the_master_never_saw_is_all_outside() -> None:
    (slow,) = explain([(5.0, 0.2)], [], 0.05)

    assert slow.outside == pytest.approx(0.2)
    assert slow.cause == "outside"
