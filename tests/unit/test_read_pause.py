"""A controller pass gives way to the agents' streams once the master stopped reading them
(master/controllers/read_pause.py), and only then."""

from __future__ import annotations

import asyncio

from kernel.clock import FakeClock
from master.controllers.manager import ControllerManager
from master.controllers.nodes import LeaseTable
from master.controllers.pacing import rest_after_pass
from master.controllers.read_backlog import ReadBacklog
from master.controllers.read_pause import MOST_SECONDS, SLICE_SECONDS, reads_starved
from master.state import ClusterState
from master.store import MemoryStore


def test_reading_stopped_after_ten_beats_of_the_fleets_rate() -> None:
    # 50 beats a second: 0.2 s without one.
    assert not reads_starved(0.19, 50.0)
    assert reads_starved(0.2, 50.0)


def test_a_small_cluster_is_not_starved_between_its_beats() -> None:
    # 3 nodes beating every second: 3.3 s without a beat, longer than any pass of theirs.
    assert not reads_starved(1.5, 3.0)
    assert reads_starved(3.4, 3.0)


def test_a_busy_loops_jitter_is_not_starvation() -> None:
    # 125 beats a second (5,000 nodes on 40 s plans): not before 0.1 s, not 80 ms.
    assert not reads_starved(0.09, 125.0)
    assert reads_starved(0.1, 125.0)


def test_a_fleet_silent_for_long_or_never_heard_is_not_waited_for() -> None:
    assert not reads_starved(31.0, 125.0)
    assert not reads_starved(5.0, 0.0)


def _read_fleet(backlog: ReadBacklog, clock: FakeClock, rate: float, seconds: float) -> None:
    """Beats read at `rate` a second for `seconds` of the clock."""
    for i in range(round(rate * seconds)):
        clock.advance(1 / rate)
        backlog.observe(f"n{i % 50}", clock.now() - 0.01, clock.now(), clock.monotonic())


def test_the_read_backlog_knows_when_it_last_read_and_how_fast_it_read() -> None:
    clock, backlog = FakeClock(), ReadBacklog()
    assert backlog.reading(clock.monotonic()) == (0.0, 0.0)
    _read_fleet(backlog, clock, 100.0, 2.0)
    clock.advance(0.3)
    since, rate = backlog.reading(clock.monotonic())
    assert abs(since - 0.3) < 1e-9
    assert abs(rate - 100.0) < 1e-6


def _manager() -> tuple[FakeClock, ControllerManager, list[float]]:
    clock = FakeClock()
    manager = ControllerManager(ClusterState(MemoryStore(), clock), clock, LeaseTable())
    cpu = [0.0]
    manager._cpu_clock = lambda: cpu[0]
    return clock, manager, cpu


async def _wait_between_steps(
    clock: FakeClock,
    manager: ControllerManager,
    cpu: list[float],
    read_at: int = 0,
    busy: float = 0.9,
    allowed: float = 10.0,
) -> float:
    """How long (fake clock) the pass waits between two steps, a beat read once `read_at`
    slices went by (0: never), the loop's thread busy for `busy` of each slice."""
    start = clock.monotonic()
    wait = asyncio.create_task(manager._give_way(allowed))
    slices = 0
    while not wait.done():
        await asyncio.sleep(0)
        if clock.sleepers:
            slices += 1
            cpu[0] += busy * SLICE_SECONDS
            clock.advance(SLICE_SECONDS)
            if slices == read_at:
                now = clock.now()
                manager.read_backlog.observe("n0", now - 0.01, now, clock.monotonic())
    waited = await wait
    assert abs(waited - (clock.monotonic() - start)) < 1e-9
    return waited


def _stop_reading(clock: FakeClock, manager: ControllerManager) -> None:
    """The fleet read at 125 a second for 4 s, then nothing for 0.2 s: 25 beats' worth."""
    _read_fleet(manager.read_backlog, clock, 125.0, 4.0)
    clock.advance(0.2)


def test_a_pass_waits_for_the_streams_to_be_read_again() -> None:
    async def run() -> tuple[float, float, float]:
        clock, manager, cpu = _manager()
        _read_fleet(manager.read_backlog, clock, 125.0, 4.0)
        reading = await _wait_between_steps(clock, manager, cpu)
        clock.advance(0.2)  # nothing read: 25 beats' worth
        until_read = await _wait_between_steps(clock, manager, cpu, read_at=3)
        clock.advance(0.2)
        never_read = await _wait_between_steps(clock, manager, cpu)
        return reading, until_read, never_read

    reading, until_read, never_read = asyncio.run(run())
    # Reading as it did: only the loop's turn (no wait). Stopped while the loop is busy:
    # waits until a beat is read (3 slices), or at most MOST_SECONDS.
    assert reading == 0.0
    assert abs(until_read - 3 * SLICE_SECONDS) < 1e-9
    assert abs(never_read - MOST_SECONDS) < SLICE_SECONDS


def test_a_pass_does_not_wait_on_an_idle_loop() -> None:
    async def run() -> float:
        clock, manager, cpu = _manager()
        _stop_reading(clock, manager)
        return await _wait_between_steps(clock, manager, cpu, busy=0.0)

    # No beat read, but nothing else ran either: one slice, then the pass goes on.
    assert abs(asyncio.run(run()) - SLICE_SECONDS) < 1e-9


def test_a_pass_waits_no_longer_than_the_rest_it_owes() -> None:
    async def run() -> float:
        clock, manager, cpu = _manager()
        _stop_reading(clock, manager)
        return await _wait_between_steps(clock, manager, cpu, allowed=0.1)

    # (In slices: the one under way when the time is up ends it.)
    assert 0.1 - 1e-9 <= asyncio.run(run()) <= 0.1 + SLICE_SECONDS + 1e-9


def test_a_cheap_pass_never_waits() -> None:
    # A pass under pacing.CHEAP_PASS_SECONDS owes no rest (the steady state, where a dead
    # node is found within a pass of its stream's end): however starved, no wait.
    async def run() -> float:
        clock, manager, cpu = _manager()
        _stop_reading(clock, manager)
        return await _wait_between_steps(clock, manager, cpu, allowed=rest_after_pass(0.009))

    assert asyncio.run(run()) == 0.0
