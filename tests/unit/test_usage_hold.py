"""A usage sample waits out the agent's container starts (agent/usage.py usage_hold): the
pure rule on plain numbers, then the hold against a Worker whose start the test holds, in
fake time."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable

from agent.runtime.port import ContainerConfig, ContainerInfo
from agent.usage import USAGE_HOLD_MAX, hold_for_starts, usage_hold
from tests.unit.test_agent_worker import Harness, web_pod


def test_a_sample_goes_at_once_without_starts_and_waits_for_them_at_most_the_hold() -> None:
    assert usage_hold(now=100.0, due=100.0, starting=0) == 0.0
    assert usage_hold(now=100.0, due=100.0, starting=3) == USAGE_HOLD_MAX
    assert usage_hold(now=103.0, due=100.0, starting=1, hold_max=5.0) == 2.0
    assert usage_hold(now=105.0, due=100.0, starting=1, hold_max=5.0) == 0.0
    assert usage_hold(now=109.0, due=100.0, starting=30, hold_max=5.0) == 0.0


def test_the_default_hold_outlasts_an_apply_of_30_and_keeps_top_within_15_s() -> None:
    # apply -> 30 took the engine 5.6-7.9 s here (tests/bench/engine_calls.py): a 5 s hold
    # let the sample's 30 stats calls in half way through.
    assert usage_hold(now=108.0, due=100.0, starting=12) > 0
    assert 5.0 + USAGE_HOLD_MAX <= 15.0  # the interval plus the hold: metrics-server's scrape


async def _turns(n: int = 200) -> None:
    for _ in range(n):
        await asyncio.sleep(0)


class HeldStarts:
    """A Harness whose container starts return only when the test lets them."""

    def __init__(self) -> None:
        self.h = Harness()
        self.let_return = asyncio.Event()
        original = self.h.runtime.create_and_start

        async def held(
            config: ContainerConfig, image_ready: Awaitable[object] | None = None
        ) -> ContainerInfo:
            info = await original(config, image_ready)
            await self.let_return.wait()
            return info

        self.h.runtime.create_and_start = held  # type: ignore[method-assign]

    async def starting(self, *pods: str) -> None:
        await self.h.step()
        self.h.assign(*(web_pod(p) for p in pods))
        await self.h.worker.iterate()
        await _turns()
        assert self.h.worker.starting == len(pods)


def test_the_hold_ends_when_the_starts_end() -> None:
    async def scenario() -> None:
        held = HeldStarts()
        await held.starting("a", "b")
        hold = asyncio.create_task(hold_for_starts(held.h.clock, held.h.worker))
        await _turns()
        assert not hold.done()

        held.let_return.set()
        await held.h.worker.settle()
        await asyncio.wait_for(hold, 5)

        assert held.h.worker.starting == 0

    asyncio.run(scenario())


def test_the_hold_ends_after_its_longest_wait_while_starts_go_on() -> None:
    async def scenario() -> None:
        held = HeldStarts()
        await held.starting("a")
        clock = held.h.clock
        hold = asyncio.create_task(hold_for_starts(clock, held.h.worker))
        await _turns()
        clock.advance(USAGE_HOLD_MAX - 0.1)
        await _turns()
        assert not hold.done()

        clock.advance(0.1)
        await asyncio.wait_for(hold, 5)

        assert held.h.worker.starting == 1
        held.let_return.set()
        await held.h.worker.settle()

    asyncio.run(scenario())
