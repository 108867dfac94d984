"""KeyedLock: one holder per key at a time, keys independent, nothing kept once unused."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from agent.runtime.keyed_lock import KeyedLock


def _until(predicate: Callable[[], bool], what: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.001)


def test_a_second_holder_of_a_key_waits_for_the_first() -> None:
    locks: KeyedLock[str] = KeyedLock()
    order: list[str] = []
    release = threading.Event()

    def first() -> None:
        with locks.held("c1"):
            order.append("first in")
            assert release.wait(30)
            order.append("first out")

    def second() -> None:
        with locks.held("c1"):
            order.append("second in")

    a = threading.Thread(target=first)
    a.start()
    _until(lambda: order == ["first in"], "the first holder")
    b = threading.Thread(target=second)
    b.start()
    _until(lambda: locks.users("c1") == 2, "the second asking")
    assert order == ["first in"]
    release.set()
    a.join(30)
    b.join(30)
    assert order == ["first in", "first out", "second in"]
    assert locks.users("c1") == 0


def test_other_keys_are_not_waited_for() -> None:
    locks: KeyedLock[str] = KeyedLock()
    inside = threading.Event()
    release = threading.Event()

    def hold() -> None:
        with locks.held("c1"):
            inside.set()
            assert release.wait(30)

    t = threading.Thread(target=hold)
    t.start()
    assert inside.wait(30)
    try:
        with locks.held("c2"):
            assert locks.users("c1") == 1
            assert locks.users("c2") == 1
    finally:
        release.set()
        t.join(30)
    assert locks.users("c1") == locks.users("c2") == 0


def test_a_holder_that_raises_frees_its_key() -> None:
    locks: KeyedLock[str] = KeyedLock()
    try:
        with locks.held("c1"):
            raise ValueError("the engine said no")
    except ValueError:
        pass
    assert locks.users("c1") == 0
    with locks.held("c1"):
        assert locks.users("c1") == 1
