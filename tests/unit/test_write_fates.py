"""WriteFates: a waiter hears the worst fate recorded since it began of a range meeting its own."""

from __future__ import annotations

import random

from master.write_fates import KEPT, Fate, WriteFates


def test_only_fates_after_the_mark_and_meeting_the_range_count() -> None:
    fates = WriteFates()
    fates.record(0, 10, "unknown")
    mark = fates.mark()
    fates.record(10, 20, "dropped")
    fates.record(30, 40, "unknown")

    assert fates.since(mark, 20, 30) is None  # (20, 30] meets neither (10, 20] nor (30, 40]
    assert fates.since(mark, 15, 25) == "dropped"
    assert fates.since(mark, 15, 35) == "unknown"  # unknown outranks dropped
    assert fates.since(0, 5, 8) == "unknown"
    assert fates.since(fates.mark(), 0, 100) is None


def test_an_empty_range_is_not_recorded() -> None:
    fates = WriteFates()
    fates.record(7, 7, "dropped")
    assert fates.mark() == 0


def test_a_waiter_older_than_what_is_kept_hears_may_or_may_not() -> None:
    fates = WriteFates()
    mark = fates.mark()
    for i in range(KEPT + 1):
        fates.record(1000 + i, 1001 + i, "dropped")

    assert fates.since(mark, 0, 5) == "unknown"
    assert fates.since(fates.mark() - KEPT, 0, 5) is None


def test_against_a_brute_force_over_random_histories() -> None:
    rng = random.Random(7)
    for _ in range(200):
        fates = WriteFates()
        history: list[tuple[int, int, int, Fate]] = []
        for seq in range(1, 40):
            low = rng.randrange(0, 100)
            high = low + rng.randrange(1, 20)
            fate: Fate = rng.choice(["unknown", "dropped"])
            fates.record(low, high, fate)
            history.append((seq, low, high, fate))
        mark = rng.randrange(0, 40)
        low = rng.randrange(0, 110)
        high = low + rng.randrange(1, 30)
        met = {f for s, lo, hi, f in history if s > mark and hi > low and lo < high}
        want = "unknown" if "unknown" in met else ("dropped" if met else None)
        assert fates.since(mark, low, high) == want
