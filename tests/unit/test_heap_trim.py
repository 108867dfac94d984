"""master/heap_trim.py: when the master gives glibc's free pages back (pure plan, fake clock)."""

from __future__ import annotations

import asyncio

from kernel.clock import FakeClock
from master import heap_trim
from master.heap_trim import TrimPlan


def _ticks(plan: TrimPlan, versions: list[int]) -> list[bool]:
    return [plan.tick(v) for v in versions]


def test_a_burst_is_trimmed_after_once_it_has_been_quiet_for_two_ticks() -> None:
    plan = TrimPlan(trimmed_at=0, seen=0, burst=2000, quiet_changes=50, quiet_ticks=2)

    # 1,000 changes a tick: a burst under way, never trimmed in the middle of it.
    assert _ticks(plan, [1000, 2000, 3000, 4000]) == [False] * 4
    # Quiet (a few changes a tick): the second quiet tick trims, once.
    assert _ticks(plan, [4010, 4020, 4030, 4040]) == [False, True, False, False]


def test_a_quiet_master_and_a_small_change_are_never_trimmed() -> None:
    plan = TrimPlan(trimmed_at=0, seen=0, burst=2000, quiet_changes=50, quiet_ticks=2)

    # A steady trickle of 40 changes a tick: every tick is quiet, so it is trimmed once per
    # 2,000 changes it adds up to (4,000 over 100 ticks: twice), not once a tick.
    trims = _ticks(plan, [40 * i for i in range(1, 101)])
    assert trims.count(True) == 2
    # A small apply (500 changes) on a quiet master: nothing to give back worth a trim.
    plan = TrimPlan(trimmed_at=0, seen=0, burst=2000, quiet_changes=50, quiet_ticks=2)
    assert _ticks(plan, [500, 500, 500, 500]) == [False] * 4


def test_a_second_burst_is_trimmed_after_too() -> None:
    plan = TrimPlan(trimmed_at=0, seen=0, burst=2000, quiet_changes=50, quiet_ticks=2)

    assert _ticks(plan, [3000, 3000, 3000]) == [False, False, True]
    assert _ticks(plan, [4000, 6000, 6000, 6000]) == [False, False, False, True]


def test_run_trims_on_its_clock_after_a_burst() -> None:
    clock = FakeClock()
    version = [0]
    trims: list[float] = []

    def trim() -> int:
        trims.append(clock.monotonic())
        return 1

    async def scenario() -> list[float]:
        task = asyncio.create_task(
            heap_trim.run(clock, lambda: version[0], trim, lambda: 0, tick_s=5.0)
        )
        start = clock.monotonic()
        for tick in range(8):
            while clock.sleepers == 0:
                await asyncio.sleep(0)
            if tick < 2:
                version[0] += 5000  # the burst, over the first two ticks
            clock.advance(5.0)
        while clock.sleepers == 0:  # the last tick's trim (a worker thread), if any
            await asyncio.sleep(0)
        task.cancel()
        return [t - start for t in trims]

    # Burst in the ticks at 5 and 10 s, quiet at 15 and 20: trimmed once, at 20 s.
    assert asyncio.run(scenario()) == [20.0]


def test_glibc_trim_is_found_here_and_gives_back_without_error() -> None:
    # These machines run glibc (Debian); elsewhere the master runs without trimming.
    trim = heap_trim.glibc_trim()
    assert trim is not None
    assert trim() in (0, 1)
