"""StatusOutbox: only changed reports go out; a registration snapshot counts as sent."""

from __future__ import annotations

from agent.model import PodStatusReport
from agent.outbox import StatusOutbox


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
