"""StatusOutbox: only changed reports go out; a registration snapshot counts as sent."""

from __future__ import annotations

import pytest

from agent.model import PodStatusReport
from agent.outbox import FLUSH_INTERVAL, StatusOutbox, flush_pause


def test_only_changes_are_taken() -> None:
    box = StatusOutbox()
    a, b = PodStatusReport("a", 1), PodStatusReport("b", 1)
    box.update([a, b])
    assert box.take_changed() == [a, b]

    running = PodStatusReport("a", 1, phase="Running")
    box.update([running, b])

    assert box.take_changed() == [running]
    assert box.take_changed() == []


def test_snapshot_marks_everything_sent_and_forgotten_pods_come_back_fresh() -> None:
    box = StatusOutbox()
    a = PodStatusReport("a", 1)
    box.update([a])
    assert box.snapshot() == [a]
    assert box.take_changed() == []

    box.update([])
    box.update([a])

    assert box.take_changed() == [a]


def test_reports_go_at_once_after_a_quiet_spell_and_at_most_once_an_interval() -> None:
    assert flush_pause(now=10.0, last_batch=9.0) == 0.0
    assert flush_pause(now=10.0, last_batch=10.0 - FLUSH_INTERVAL) == 0.0
    assert flush_pause(now=10.0, last_batch=9.97) == pytest.approx(FLUSH_INTERVAL - 0.03)
    assert flush_pause(now=10.0, last_batch=10.0, interval=0.5) == 0.5


def test_every_update_wakes_the_sender() -> None:
    box = StatusOutbox()
    woken: list[int] = []
    box.on_update(lambda: woken.append(1))
    box.update([PodStatusReport("a", 1)])
    box.update([])
    assert len(woken) == 2
