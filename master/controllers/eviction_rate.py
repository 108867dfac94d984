"""How fast pods of nodes NotReady by their lease alone are evicted (pure): a token bucket.

A node whose lease ran out while its session stream stays open is either an agent whose
Python hung (its gRPC core still answers the keepalive pings) or the master's own
misjudgement: its loop read the node's heartbeats late. The second is what a 5,000-node
apply showed: 2,000-4,250 healthy nodes NotReady by lease within a minute and ~48,000 of
50,000 pods evicted once, on a master already behind. A killed or cut agent is not in
this class: its stream ends, and its pods go as fast as before (lifecycle.py).

So, as Kubernetes' node lifecycle controller does with --node-eviction-rate and its
unhealthy-zone logic, the nodes of this class are evicted through a token bucket: up to
`burst` at once, then `rate` nodes a second; and while more than `disrupted_share` of the
nodes (and more than `minimum`) are silent with their streams open at once, the problem
is more likely the master's than theirs, and the bucket fills at `secondary_rate` only (one
node every 100 s by default). A misjudgement then costs a few nodes' pods, not the fleet's;
a real mass hang is still handled, slowly (those agents fence themselves: their pods are
not run twice, only missing until their turn). Their pods are marked not ready (out of the
load balancer) at once either way: only the replacement waits. One event says when the
slow rate starts and why, another when it ends.

A node admitted once keeps its turn until it is no longer waiting (Ready again, or its pods
gone), so its pods are not charged twice. Nodes wait in the order they went NotReady.

Pure: the caller passes the (monotonic) time in and executes the verdicts.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class EvictionRateSettings:
    # Nodes a second (Kubernetes' --node-eviction-rate: 0.1), after a burst of this many.
    rate: float = 0.1
    burst: int = 3
    # More than this share of the nodes silent with their streams open at once (and more
    # than `minimum` of them: a few hung together are a few hung)...
    disrupted_share: float = 0.1
    minimum: int = 3
    # ...and the bucket fills this slowly (Kubernetes' --secondary-node-eviction-rate).
    secondary_rate: float = 0.01


@dataclass(frozen=True, slots=True)
class RateChange:
    """The slow rate started (`slow`) or ended: say so once, why."""

    slow: bool
    message: str


def disrupted(silent: int, total: int, settings: EvictionRateSettings) -> bool:
    """Whether `silent` nodes with open streams of `total` say the master is the suspect."""
    return silent > max(settings.minimum, math.floor(settings.disrupted_share * total))


class LeaseEvictions:
    """The token bucket for evictions by lease alone (see the module docstring)."""

    def __init__(self, settings: EvictionRateSettings | None = None) -> None:
        self.settings = settings or EvictionRateSettings()
        self._tokens = float(self.settings.burst)
        self._at: float | None = None
        self._admitted: set[str] = set()
        self.slow = False

    def admit(
        self, now: float, waiting: Sequence[str], silent: int, total: int
    ) -> tuple[set[str], RateChange | None]:
        """Which of the `waiting` nodes (due for eviction by lease alone, in order) may have
        their pods evicted now, when `silent` of `total` nodes are silent with their streams
        open; and the change of rate to announce, if any."""
        s = self.settings
        slow = disrupted(silent, total, s)
        change = None
        if slow != self.slow:
            self.slow = slow
            change = RateChange(slow, _message(slow, silent, total, s))
        if self._at is not None:
            rate = s.secondary_rate if slow else s.rate
            self._tokens = min(float(s.burst), self._tokens + rate * max(0.0, now - self._at))
        self._at = now
        still = set(waiting)
        self._admitted &= still
        for node in waiting:
            if node in self._admitted:
                continue
            if self._tokens < 1.0:
                break
            self._tokens -= 1.0
            self._admitted.add(node)
        return set(self._admitted), change


def _message(slow: bool, silent: int, total: int, s: EvictionRateSettings) -> str:
    if slow:
        return (
            f"{silent} of {total} nodes are silent with their sessions open at once (more "
            f"than {s.disrupted_share:.0%}): more likely the master reads them late than "
            f"they all hung; pods of such nodes are replaced at most one node every "
            f"{1 / s.secondary_rate:g}s"
        )
    return (
        f"{silent} of {total} nodes silent with their sessions open: pods of such nodes are "
        f"replaced at up to one node every {1 / s.rate:g}s again"
    )
