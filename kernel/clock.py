"""Injected time, so leases, backoff and ages are unit tested without sleeping.

`now()` is wall time (seconds since the epoch; stored in objects, shown to users,
used for backoff), `monotonic()` is for measuring intervals (leases, fencing),
which wall-clock jumps must not disturb. Production code takes a `Clock`; tests
pass a `FakeClock`, which moves only when told to.
"""

from __future__ import annotations

import time
from typing import Protocol


class Clock(Protocol):
    def now(self) -> float: ...

    def monotonic(self) -> float: ...


class SystemClock:
    def now(self) -> float:
        return time.time()

    def monotonic(self) -> float:
        return time.monotonic()


class FakeClock:
    """A clock that moves only when told to."""

    def __init__(self, start: float = 1_700_000_000.0) -> None:
        self._now = start
        self._mono = 1000.0

    def now(self) -> float:
        return self._now

    def monotonic(self) -> float:
        return self._mono

    def advance(self, seconds: float) -> None:
        self._now += seconds
        self._mono += seconds
