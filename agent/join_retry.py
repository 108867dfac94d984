"""When a join that did not go through is tried again (pure).

Two kinds of "not now" from a master:
- busy: it is admitting as many joins as it takes at once (RESOURCE_EXHAUSTED,
  master/pki/admission.py) and says when to come back (`retry-after`, seconds,
  in the trailing metadata). That is no failure: the backoff does not grow, the
  agent stays with the same master, and it comes back after half to one and a
  half times the hint (jitter: thousands of machines refused in the same second
  must not all return in the same second);
- unreachable (not up yet, a deadline passed): wait the backoff, which doubles
  up to RETRY_CAP, also spread over half to one and a half times it. Without the
  spread, agents whose attempts failed together (a join storm's deadlines
  passing in the same second on an overloaded master) came back together, in
  lockstep at every doubling, and met the same overload each time.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

RETRY_FIRST = 0.2
RETRY_CAP = 10.0
# Trailing metadata of a busy master's refusal (master/pki/admission.py).
RETRY_AFTER_METADATA = "retry-after"


@dataclass(frozen=True, slots=True)
class JoinWait:
    # Seconds to wait before the next attempt.
    seconds: float
    # The backoff for the next unreachable master.
    delay: float
    # Whether this counts as a failure (rotates to the next master, logged as such).
    failure: bool


def retry_after(metadata: Iterable[tuple[str, str | bytes]] | None) -> float:
    """The master's `retry-after` hint in seconds (0: none, or not a number)."""
    for key, value in metadata or ():
        if key == RETRY_AFTER_METADATA:
            try:
                seconds = float(value)
            except (TypeError, ValueError):
                return 0.0
            return seconds if 0 < seconds < float("inf") else 0.0
    return 0.0


def join_wait(busy: bool, hint: float, delay: float, jitter: float) -> JoinWait:
    """How long to wait after an attempt that did not go through (`jitter` in [0, 1))."""
    if busy:
        base = hint if hint > 0 else delay
        return JoinWait(base * (0.5 + jitter), delay, failure=False)
    return JoinWait(delay * (0.5 + jitter), min(RETRY_CAP, delay * 2), failure=True)
