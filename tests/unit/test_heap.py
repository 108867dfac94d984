"""The garbage collector's schedule (kernel/heap.py): freeze often, sweep fully only when the
heap grew, on a fake clock and a fake collector."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import pytest

from kernel import heap
from kernel.clock import FakeClock
from kernel.heap import HeapPlan, HeapSize


class FakeCollector:
    """Records the calls; a full collection sets `blocks[0]` to `reclaim_to` when set. It
    has no get_freeze_count: that walks every frozen object (30-60 ms on the master's loop
    at 1,000 nodes, every tick), and the plan must not need it."""

    def __init__(self, blocks: list[int] | None = None) -> None:
        self.calls: list[str] = []
        self.blocks = blocks or [0]
        self.reclaim_to: int | None = None

    def collect(self, generation: int = 2) -> int:
        self.calls.append(f"collect{generation}")
        if generation == 2 and self.reclaim_to is not None:
            self.blocks[0], self.reclaim_to = self.reclaim_to, None
        return 0

    def freeze(self) -> None:
        self.calls.append("freeze")

    def unfreeze(self) -> None:
        self.calls.append("unfreeze")


def test_settle_collects_fully_then_freezes() -> None:
    collector = FakeCollector()
    heap.settle(collector)
    assert collector.calls == ["collect2", "freeze"]


def test_a_heap_that_holds_steady_is_never_swept() -> None:
    plan = HeapPlan(HeapSize(blocks=1_000_000, rss=200 << 20))
    # A day of ticks, the heap wobbling but never a quarter above its lowest.
    for tick in range(8640):
        wobble = 1_000_000 + (tick % 7) * 10_000
        assert plan.step(tick * 10.0, HeapSize(wobble, (200 << 20) + (tick % 3 << 20))) == "freeze"


def test_growth_of_a_quarter_in_allocated_blocks_or_rss_brings_a_sweep() -> None:
    plan = HeapPlan(HeapSize(blocks=1000, rss=1000))
    assert plan.step(10.0, HeapSize(1249, 1000)) == "freeze"
    assert plan.step(20.0, HeapSize(1250, 1000)) == "sweep"
    plan.swept(HeapSize(1250, 1000), HeapSize(1100, 1000))  # it reclaimed 12 %
    assert plan.step(25.0, HeapSize(1250, 1000)) == "freeze"
    plan.swept(HeapSize(1250, 1000), HeapSize(1250, 1000))  # (tested below)
    plan.growth = heap.SWEEP_GROWTH
    # Measured from the size after the sweep, not the first one.
    assert plan.step(30.0, HeapSize(1500, 1000)) == "freeze"
    assert plan.step(40.0, HeapSize(1500, 1250)) == "sweep"


def test_growth_counts_from_the_lowest_since_the_last_sweep() -> None:
    """Pods deleted while frozen cycles leak: the leak shows as growth from the low."""
    plan = HeapPlan(HeapSize(blocks=1000, rss=1000))
    assert plan.step(10.0, HeapSize(600, 1000)) == "freeze"
    assert plan.step(20.0, HeapSize(749, 1000)) == "freeze"
    assert plan.step(30.0, HeapSize(750, 1000)) == "sweep"


def test_sweeps_that_find_little_wait_for_twice_the_growth_up_to_the_cap() -> None:
    """A cluster joining or the watch history filling grows the heap with live objects:
    sweeping it again at each quarter is a stall for nothing."""
    plan = HeapPlan(HeapSize(blocks=1000, rss=0))
    assert plan.step(10.0, HeapSize(1250, 0)) == "sweep"
    plan.swept(HeapSize(1250, 0), HeapSize(1240, 0))  # 0.8 % reclaimed: the growth was live
    assert plan.step(20.0, HeapSize(1859, 0)) == "freeze"  # +49.9 % from 1,240
    assert plan.step(30.0, HeapSize(1860, 0)) == "sweep"  # +50 %
    plan.swept(HeapSize(1860, 0), HeapSize(1860, 0))
    assert plan.growth == heap.MAX_SWEEP_GROWTH  # 100 %: and no further
    plan.swept(HeapSize(1860, 0), HeapSize(1860, 0))
    assert plan.growth == heap.MAX_SWEEP_GROWTH
    assert plan.step(40.0, HeapSize(3719, 0)) == "freeze"
    assert plan.step(50.0, HeapSize(3720, 0)) == "sweep"
    # A sweep that reclaimed a real share (dead cycles): back to a quarter.
    plan.swept(HeapSize(3720, 0), HeapSize(3000, 0))
    assert plan.growth == heap.SWEEP_GROWTH
    assert plan.step(60.0, HeapSize(3750, 0)) == "sweep"


def test_no_rss_to_read_never_sweeps_by_rss() -> None:
    plan = HeapPlan(HeapSize(blocks=1000, rss=0))
    assert plan.step(10.0, HeapSize(1000, 0)) == "freeze"
    assert plan.step(20.0, HeapSize(1000, 1 << 30)) == "freeze"


def test_the_old_fixed_period_is_still_there_for_experiments() -> None:
    plan = HeapPlan(HeapSize(1000, 1000), last_sweep=0.0, sweep_every=900.0)
    assert plan.step(899.0, HeapSize(1000, 1000)) == "freeze"
    assert plan.step(900.0, HeapSize(1000, 1000)) == "sweep"
    assert plan.step(910.0, HeapSize(1000, 1000)) == "freeze"


def test_a_freeze_collects_the_young_first_and_a_sweep_unfreezes_before_collecting() -> None:
    collector = FakeCollector()
    heap.carry_out("freeze", collector)
    assert collector.calls == ["collect1", "freeze"]
    collector.calls.clear()
    heap.carry_out("sweep", collector)
    # Frozen cycles are only reclaimed once unfrozen; what is left is frozen again.
    assert collector.calls == ["unfreeze", "collect2", "freeze"]


def test_the_loop_freezes_every_period_and_sweeps_when_the_heap_grew() -> None:
    clock = FakeClock()
    blocks = [1000]
    collector = FakeCollector(blocks)
    rss = [100 << 20]

    async def tick() -> None:
        for _ in range(3):
            await asyncio.sleep(0)
        clock.advance(10)
        for _ in range(3):
            await asyncio.sleep(0)

    async def scenario() -> None:
        task = asyncio.create_task(
            heap.run(
                clock, collector, freeze_every=10, rss=lambda: rss[0], blocks=lambda: blocks[0]
            )
        )
        await tick()
        blocks[0] = 1300  # a third more blocks: cycles may have died frozen in there
        collector.reclaim_to = 1100  # and the sweep reclaims some; steady from here
        await tick()
        await tick()
        rss[0] = 130 << 20  # the RSS grew by more than a quarter
        await tick()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(scenario())
    assert collector.calls == [
        *("collect1", "freeze"),
        *("unfreeze", "collect2", "freeze"),
        *("collect1", "freeze"),
        *("unfreeze", "collect2", "freeze"),
    ]


def test_what_a_full_collection_leaves_is_frozen_and_nothing_else() -> None:
    collector = FakeCollector()
    on_collection = heap.freeze_after_full(collector)

    on_collection("start", {"generation": 2})
    on_collection("stop", {"generation": 0, "collected": 5})
    on_collection("stop", {"generation": 1, "collected": 5})
    assert collector.calls == []

    on_collection("stop", {"generation": 2, "collected": 5})
    assert collector.calls == ["freeze"]


def test_install_settles_and_adds_the_callback() -> None:
    callbacks: list[Callable[[str, dict[str, int]], None]] = []
    collector = FakeCollector()
    uninstall = heap.install(callbacks, collector)
    assert collector.calls == ["collect2", "freeze"]
    callbacks[0]("stop", {"generation": 2})
    assert collector.calls == ["collect2", "freeze", "freeze"]
    uninstall()
    assert callbacks == []
    uninstall()  # a second call changes nothing
