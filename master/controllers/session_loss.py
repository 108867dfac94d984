"""Mass session loss (pure): many agents' sessions ending at once is the master's problem.

One session ending says its agent died or its link was cut: the node is NotReady
`session_grace` later unless the agent is back (master/controllers/lifecycle.py).
Hundreds ending within seconds say something else: the master's loop (or its
gRPC core) fell behind and its keepalive pings timed out on live agents, or the
network between the master and the fleet hiccuped. Taken one by one, each end
wrote the node and a warning event, marked the node lost, and every agent
registered again at once; the registrations cost more than the heartbeats they
replaced, fell behind in turn, and more sessions ended (at 5,000 hollow nodes:
1,087 sessions lost, 6,827 registrations failed, 1,193 s to join).

So, like the lifecycle's stall rule for a loop that did not run and Kubernetes'
--unhealthy-zone-threshold for heartbeats: when more than `fraction` of the
nodes (and at least `minimum`) end their sessions within `window` seconds, the
valve opens. The master then gives every node a fresh lease (as after a stall:
nodes.LeaseTable.grant), the ends within the window are forgiven with it, and
while it is open a session that ends is not marked lost (no write, no event per
node); each node is judged by its heartbeats alone, so a node that is really
dead is still found, by its lease. One event says the valve opened and why;
another that it closed, once the ends within the window fall to half the
threshold.

Pure: the caller passes the (monotonic) time in and executes the verdicts.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Counted:
    """A session end taken as evidence about its node (the valve is closed)."""


@dataclass(frozen=True, slots=True)
class Excused:
    """A session end during mass loss: not evidence, its node keeps its lease."""


@dataclass(frozen=True, slots=True)
class Opened:
    """This end opened the valve: give every node a fresh lease and say why, once."""

    ended: int
    nodes: int
    window: float
    message: str


@dataclass(frozen=True, slots=True)
class Closed:
    message: str


SessionEndVerdict = Counted | Excused | Opened


@dataclass(frozen=True, slots=True)
class SessionLossSettings:
    # Session ends within this many seconds are counted together.
    window: float = 5.0
    # The valve opens when more than this fraction of the nodes ended within the window...
    fraction: float = 0.05
    # ...and more than this many (a few nodes dying together, e.g. a rack, are nodes dying).
    minimum: int = 20


def threshold(nodes: int, settings: SessionLossSettings) -> int:
    """Session ends within the window beyond which the loss is the master's problem."""
    return max(settings.minimum, math.ceil(settings.fraction * nodes))


class SessionLossValve:
    def __init__(self, settings: SessionLossSettings | None = None) -> None:
        self.settings = settings or SessionLossSettings()
        self._ends: deque[float] = deque()
        self.open = False

    def _forget(self, now: float) -> None:
        oldest = now - self.settings.window
        while self._ends and self._ends[0] <= oldest:
            self._ends.popleft()

    def session_ended(self, now: float, nodes: int) -> SessionEndVerdict:
        """A session ended (not superseded, not the master stopping) in a cluster of `nodes`."""
        self._forget(now)
        self._ends.append(now)
        if self.open:
            return Excused()
        limit = threshold(nodes, self.settings)
        if len(self._ends) <= limit:
            return Counted()
        self.open = True
        count, window = len(self._ends), self.settings.window
        return Opened(
            count,
            nodes,
            window,
            f"{count} of {nodes} nodes' sessions ended within {window:g}s (more than "
            f"{limit}): the problem is more likely the master's or the network's than the "
            f"nodes'; every node has a fresh lease and is judged by its heartbeats alone "
            f"until the sessions stop ending",
        )

    def check(self, now: float, nodes: int) -> Closed | None:
        """Close the valve once the ends within the window fall to half the threshold."""
        if not self.open:
            return None
        self._forget(now)
        if len(self._ends) * 2 > threshold(nodes, self.settings):
            return None
        self.open = False
        return Closed(
            f"{len(self._ends)} sessions ended within {self.settings.window:g}s: a session "
            f"that ends marks its node lost again"
        )
