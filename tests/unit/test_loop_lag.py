"""The event-loop lag probe: how late a wake-up is, and whether the master or the machine
made it late (master/metrics/looplag.py), on a fake clock and a fake CPU clock."""

from __future__ import annotations

import asyncio

import pytest

from kernel.clock import FakeClock
from master.metrics.looplag import STALL_SECONDS, Wakeup, judge, run_probe


def test_a_wakeup_on_time_or_a_little_late_is_no_stall() -> None:
    assert judge(0.05, 0.05, 0.0) == Wakeup(0.0)
    assert judge(0.05, 0.06, 0.001).lag == pytest.approx(0.01)
    assert judge(0.05, 0.06, 0.001).stall is None
    # Early (a coarse timer) counts as on time, never as negative lag.
    assert judge(0.05, 0.049, 0.0) == Wakeup(0.0)


def test_a_loop_that_ran_through_the_interval_is_a_busy_stall() -> None:
    # Asked 50 ms, woke after 300 ms, the loop's thread ran 280 ms of it: its own work.
    wakeup = judge(0.05, 0.30, 0.28)
    assert wakeup.stall == "busy"
    assert wakeup.lag == pytest.approx(0.25)
    assert wakeup.busy == pytest.approx(0.25)  # never more than the lateness


def test_a_loop_that_did_not_run_was_starved() -> None:
    # Woke 400 ms late having used 5 ms of CPU: it waited for a CPU (or the GIL).
    wakeup = judge(0.05, 0.45, 0.005)
    assert wakeup.stall == "starved"
    assert wakeup.busy == pytest.approx(0.005)


def test_a_stall_partly_run_and_partly_waited_is_split() -> None:
    # A 100 ms section that took 250 ms of wall on a loaded machine.
    wakeup = judge(0.05, 0.30, 0.10)
    assert wakeup.stall == "starved"  # most of the wall went waiting
    assert wakeup.busy == pytest.approx(0.10)
    assert wakeup.lag - wakeup.busy == pytest.approx(0.15)


def test_the_threshold_is_a_stall() -> None:
    assert judge(0.05, 0.05 + STALL_SECONDS, 0.1).stall == "busy"


def test_the_probe_reports_each_interval_with_the_cpu_the_loop_used() -> None:
    clock = FakeClock()
    cpu = [0.0]
    seen: list[Wakeup] = []

    async def scenario() -> None:
        task = asyncio.create_task(run_probe(clock, lambda: cpu[0], seen.append, interval=0.05))
        for _ in range(3):
            await asyncio.sleep(0)
        clock.advance(0.05)  # on time
        for _ in range(3):
            await asyncio.sleep(0)
        cpu[0] += 0.29  # a synchronous section ran while the probe slept
        clock.advance(0.3)
        for _ in range(3):
            await asyncio.sleep(0)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(scenario())
    assert [w.stall for w in seen] == [None, "busy"]
    assert seen[1].lag == pytest.approx(0.25)
