"""SingleFlight: concurrent asks for one key share a call; later asks start a fresh one."""

from __future__ import annotations

import asyncio

import pytest

from agent.runtime.single_flight import SingleFlight


class Pulls:
    """A pull that waits until released, counting how often it was started."""

    def __init__(self) -> None:
        self.started = 0
        self.release = asyncio.Event()

    async def pull(self) -> str:
        self.started += 1
        await self.release.wait()
        return f"digest-{self.started}"


async def _concurrent_asks_for_one_key_share_one_call() -> None:
    flight: SingleFlight[str, str] = SingleFlight()
    pulls = Pulls()

    asks = [asyncio.create_task(flight.run("nginx:latest", pulls.pull)) for _ in range(30)]
    await asyncio.sleep(0)
    pulls.release.set()

    assert await asyncio.gather(*asks) == ["digest-1"] * 30
    assert pulls.started == 1
    assert flight.in_flight == 0


async def _an_ask_after_the_call_finished_starts_a_fresh_one() -> None:
    flight: SingleFlight[str, str] = SingleFlight()
    pulls = Pulls()
    pulls.release.set()

    first = await flight.run("nginx:latest", pulls.pull)
    second = await flight.run("nginx:latest", pulls.pull)

    assert (first, second, pulls.started) == ("digest-1", "digest-2", 2)


async def _other_keys_do_not_wait_for_each_other() -> None:
    flight: SingleFlight[str, str] = SingleFlight()
    slow, fast = Pulls(), Pulls()
    fast.release.set()

    blocked = asyncio.create_task(flight.run("big:1", slow.pull))
    assert await flight.run("small:1", fast.pull) == "digest-1"
    assert not blocked.done()
    slow.release.set()
    await blocked


async def _a_failure_reaches_every_caller_and_is_not_kept() -> None:
    flight: SingleFlight[str, str] = SingleFlight()
    calls = 0

    async def broken() -> str:
        nonlocal calls
        calls += 1
        await asyncio.sleep(0)
        raise RuntimeError("registry unreachable")

    asks = [asyncio.create_task(flight.run("img", broken)) for _ in range(3)]
    results = await asyncio.gather(*asks, return_exceptions=True)

    assert [str(r) for r in results] == ["registry unreachable"] * 3
    assert calls == 1
    with pytest.raises(RuntimeError):
        await flight.run("img", broken)
    assert calls == 2


async def _one_cancelled_caller_does_not_cancel_the_others() -> None:
    flight: SingleFlight[str, str] = SingleFlight()
    pulls = Pulls()

    gone = asyncio.create_task(flight.run("img", pulls.pull))
    stays = asyncio.create_task(flight.run("img", pulls.pull))
    await asyncio.sleep(0)
    gone.cancel()
    pulls.release.set()

    assert await stays == "digest-1"
    assert gone.cancelled()


def test_concurrent_asks_for_one_key_share_one_call() -> None:
    asyncio.run(_concurrent_asks_for_one_key_share_one_call())


def test_an_ask_after_the_call_finished_starts_a_fresh_one() -> None:
    asyncio.run(_an_ask_after_the_call_finished_starts_a_fresh_one())


def test_other_keys_do_not_wait_for_each_other() -> None:
    asyncio.run(_other_keys_do_not_wait_for_each_other())


def test_a_failure_reaches_every_caller_and_is_not_kept() -> None:
    asyncio.run(_a_failure_reaches_every_caller_and_is_not_kept())


def test_one_cancelled_caller_does_not_cancel_the_others() -> None:
    asyncio.run(_one_cancelled_caller_does_not_cancel_the_others())
