"""Join admission: at most `limit` joins in flight; the others are told when to come back.

Thousands of machines booting at once all send JoinNode. Taken all together,
every join waited in the master's loop behind the others, past the agent's 15 s
deadline, and was sent again: the master did the work of a join several times
and finished fewer and fewer (2,407 of 5,000 joined in 900 s, the join rate
down from 37/s to 1/s). A join is in flight from its JoinNode until the node
registers (its first mTLS connection, RegisterNode and session are the larger
part of the work) or `hold` seconds pass; beyond `limit` in flight, a join is
refused at once (RESOURCE_EXHAUSTED, which the agent retries and does not count
as a failure) with a `retry-after` hint in seconds, in the trailing metadata.

The hint is sized so that the joins waiting come back about as fast as the
master completes joins: once a second it is scaled by the square root of
(refusals / completions) over the last `window` seconds, so it grows while
refused joins come back faster than joins finish and shrinks when they come
back slower; between `min_retry` and `max_retry`. The agent spreads its retry
over half to one and a half times the hint (agent/join_retry.py).

Registrations are admitted the same way (`noun="registrations"`, its own limit):
many sessions lost at once, or a fleet whose joins were admitted faster than it
can register, all send RegisterNode together; each costs a node write, a flush,
and the session's first assignment, peer and service sets. A registration is in
flight from its RegisterNode until its session sent those first sets (or `hold`
passes); refused ones come back after the hint (hollow agents, and real agents
by their reconnect backoff) and cost the master a refusal only, on the
connection they already hold. A node whose join holds a slot is not counted
again: its registration ends its join.

A join whose caller has too little of its deadline left is refused the same way
before it takes a slot: on an overloaded master a JoinNode waited in gRPC's queue
for most of the agent's 15 s, and one started with a second or two left was
cancelled at its deadline in the middle of the work (its certificate signed, its
binding saved: 62 of 325 JoinNode calls at load ~40). Too little is less than
`min_left`, or twice what the joins took lately (an average over the last ones,
`observe_join`), whichever is more.

Pure: the caller passes the (monotonic) time in.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass

# Trailing metadata of a refusal: seconds until the agent should try again.
RETRY_AFTER_METADATA = "retry-after"
DEFAULT_JOINS_IN_FLIGHT = 64
DEFAULT_REGISTRATIONS_IN_FLIGHT = 128


@dataclass(frozen=True, slots=True)
class Admitted:
    pass


@dataclass(frozen=True, slots=True)
class Busy:
    retry_after: float
    message: str


class JoinAdmission:
    def __init__(
        self,
        limit: int = DEFAULT_JOINS_IN_FLIGHT,
        min_retry: float = 0.5,
        max_retry: float = 30.0,
        window: float = 5.0,
        hold: float = 20.0,
        noun: str = "joins",
        min_left: float = 0.5,
    ) -> None:
        self.limit = limit
        self._noun = noun
        self.retry_after = min_retry
        self._min, self._max, self._window, self._hold = min_retry, max_retry, window, hold
        # Node name -> when its join was admitted, oldest first.
        self._flight: dict[str, float] = {}
        self._done: deque[float] = deque()
        self._refused: deque[float] = deque()
        self._tuned_at = float("-inf")
        # What a join took lately (seconds, a moving average), and the least time left
        # worth starting one with.
        self.join_seconds = 0.0
        self._min_left = min_left

    @property
    def in_flight(self) -> int:
        return len(self._flight)

    def holds(self, node: str) -> bool:
        """Whether `node` holds a slot now."""
        return node in self._flight

    def admit(self, node: str, now: float, time_left: float | None = None) -> Admitted | Busy:
        """Take a slot for `node` (freed by `finished`, or after `hold`), or be told to wait;
        `time_left`: what is left of the caller's deadline (None: none)."""
        self._expire(now)
        if time_left is not None and time_left < self.least_time_left:
            self._refused.append(now)
            self._tune(now)
            return Busy(
                self.retry_after,
                f"the master is too busy to answer within the {self._noun[:-1]}'s deadline "
                f"({time_left:.1f}s left, {self._noun} take {self.join_seconds:.1f}s now); "
                f"retry in {self.retry_after:.1f}s",
            )
        if node in self._flight or len(self._flight) < self.limit:
            self._flight.pop(node, None)
            self._flight[node] = now
            return Admitted()
        self._refused.append(now)
        self._tune(now)
        return Busy(
            self.retry_after,
            f"the master is busy admitting other {self._noun} (at most {self.limit} at a time); "
            f"retry in {self.retry_after:.1f}s",
        )

    @property
    def least_time_left(self) -> float:
        """The least time left of a caller's deadline worth starting its join with."""
        return max(self._min_left, 2 * self.join_seconds)

    def observe_join(self, seconds: float) -> None:
        """A join's own work (its JoinNode, admitted to answered) took `seconds`."""
        if self.join_seconds <= 0:
            self.join_seconds = seconds
        else:
            self.join_seconds += 0.2 * (seconds - self.join_seconds)

    def finished(self, node: str, now: float) -> None:
        """`node`'s join is over: it registered, or its JoinNode was refused or failed."""
        if self._flight.pop(node, None) is not None:
            self._done.append(now)
            self._forget_before(now - self._window)

    def _expire(self, now: float) -> None:
        """Joins that never registered within `hold` give their slot back."""
        for node, at in list(self._flight.items()):
            if now - at < self._hold:
                break  # oldest first: the rest are younger
            del self._flight[node]

    def _forget_before(self, oldest: float) -> None:
        for times in (self._done, self._refused):
            while times and times[0] < oldest:
                times.popleft()

    def _tune(self, now: float) -> None:
        if now - self._tuned_at < 1.0:
            return
        self._tuned_at = now
        self._forget_before(now - self._window)
        ratio = (len(self._refused) + 1) / (len(self._done) + 1)
        hint = self.retry_after * math.sqrt(ratio)
        self.retry_after = min(self._max, max(self._min, hint))
