"""SingleFlight and ThreadSingleFlight: concurrent asks for one key share a call; later asks
start a fresh one."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import pytest

from agent.runtime.single_flight import SingleFlight, ThreadSingleFlight


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


# ThreadSingleFlight: the runtime's removals of one container, asked on several engine
# threads at once (the listing's sweep, the sweep after a holder died, the worker's removal).


class Removals:
    """A removal that blocks until released, counting the removals sent per container."""

    def __init__(self) -> None:
        self.sent: list[str] = []
        self.release = threading.Event()

    def remove(self, cid: str) -> str:
        self.sent.append(cid)
        assert self.release.wait(30), "never released"
        return f"removed {cid} ({len(self.sent)})"


def _wait_until(predicate: Callable[[], bool], what: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.001)


def test_removals_of_one_container_asked_together_send_one_and_share_its_outcome() -> None:
    flight: ThreadSingleFlight[str, str] = ThreadSingleFlight()
    removals = Removals()
    with ThreadPoolExecutor(4) as pool:
        first = pool.submit(flight.run, "c1", lambda: removals.remove("c1"))
        _wait_until(lambda: removals.sent == ["c1"], "the first removal sent")
        others = [pool.submit(flight.run, "c1", lambda: removals.remove("c1")) for _ in range(3)]
        _wait_until(lambda: flight.waiting == 3, "the other asks waiting for it")
        removals.release.set()
        outcomes = [f.result(timeout=30) for f in (first, *others)]
    assert removals.sent == ["c1"]
    assert outcomes == ["removed c1 (1)"] * 4
    assert (flight.in_flight, flight.waiting) == (0, 0)


def test_a_removal_of_another_container_or_after_the_end_is_sent() -> None:
    flight: ThreadSingleFlight[str, str] = ThreadSingleFlight()
    removals = Removals()
    with ThreadPoolExecutor(2) as pool:
        c1 = pool.submit(flight.run, "c1", lambda: removals.remove("c1"))
        _wait_until(lambda: removals.sent == ["c1"], "c1's removal sent")
        c2 = pool.submit(flight.run, "c2", lambda: removals.remove("c2"))
        _wait_until(lambda: removals.sent == ["c1", "c2"], "c2's removal sent beside it")
        removals.release.set()
        assert {c1.result(timeout=30), c2.result(timeout=30)} == {
            "removed c1 (2)",
            "removed c2 (2)",
        }
    assert flight.run("c1", lambda: removals.remove("c1")) == "removed c1 (3)"


def test_a_failed_removal_fails_every_ask_that_shared_it_and_the_next_one_is_sent() -> None:
    flight: ThreadSingleFlight[str, None] = ThreadSingleFlight()
    release = threading.Event()
    sent = []

    def failing() -> None:
        sent.append(1)
        assert release.wait(30)
        raise OSError("engine gone")

    with ThreadPoolExecutor(2) as pool:
        first = pool.submit(flight.run, "c1", failing)
        _wait_until(lambda: sent == [1], "the removal sent")
        second = pool.submit(flight.run, "c1", failing)
        _wait_until(lambda: flight.waiting == 1, "the second ask waiting")
        release.set()
        for ask in (first, second):
            with pytest.raises(OSError, match="engine gone"):
                ask.result(timeout=30)
    assert sent == [1]
    with pytest.raises(OSError):
        flight.run("c1", failing)
    assert sent == [1, 1]
