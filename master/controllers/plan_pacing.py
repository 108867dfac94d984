"""How many heartbeats a second the sessions' plans add up to, and how fast plans may shrink (pure).

After a join or apply burst the master's heartbeat budget is cut
(master/controllers/heartbeat_budget.py) and the agents stretched to up to 40 s; once the
budget is back their plans shrink within their sessions (master/controllers/session_plan.py),
each offered in the ack of the node's next heartbeat. A shrink costs the master more than
the shorter interval: the agent confirms the shorter plan with a heartbeat at once (so that
the master judges it by the shorter lease one round trip later, agent/state/lease.py), one
beat more than its plan. Shrinking 26.9 s plans to 20 s at 5,000 nodes offered a shrink to
each of the 186 beats a second arriving, and their 186 confirmations on top made 372 beats a
second against a budget of 250; 40 s plans to 20 s came to the budget exactly (125 old beats,
125 confirmations, the new ones growing from 0 to 250 as the old ones went).

So shrinks are paced: `PlanTally` keeps the beats a second the sessions' newest plans add
up to (one over each interval, summed), and `ShrinkPacer` admits a shrink only if the
budget is steady (full, or held 15 s), the plans with it still fit the rate they are
sized for, and the plans and the confirmations admitted over the last 5 s (a second) stay
within twice that rate. Not a token bucket filled by the tally's room (the rate less
the tally): the room is an average, and a shrunk agent beats again 20 s after its
confirmation, on top of the agents still on 40 s plans then; the same 5,000-node fleet, on
a fake clock (tests/unit/test_plan_pacing.py), took 1.5 times its budget in places and was
not back in 150 s. Nor a count of every beat received: a master loop late on a loaded
machine reads the beats queued during a stall in a bunch, and the bunches (and a hollow
fleet's own, its processes starved at load 15) filled the count; the shrinks offered with
them were turned away and waited 40 s each for their next beat (the hollow bench: 10-30 s
with no agent shrunk, 123 s to 90 % of the fleet on its plan against 60 s on the old
master). Nor a budget still growing back: it moves every 5 s window (125, 156, 195, 250 a
second at 5,000 nodes), and an agent offered the 25.6 s plan of one step was offered 20 s
at its next beat again, a second confirmation, its 25.6 s beats landing on the 20 s beats
of the agents shrunk before it (375 a second against 250 with no confirmation at all).

Pure: the caller passes the time of each beat, the rate, the tally's figure and the two
plans in.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import Literal

from master.controllers.heartbeats import HeartbeatPlan

# A budget below its cap is worth shrinking plans to once it has held this long (three of
# its 5 s windows: it grows back from a burst's cut in three or four).
STEADY_BUDGET_SECONDS = 15.0
# A plan with its shrink may exceed the rate by this share (the sum is float).
_SLACK = 1e-6

# What the pacer says of a shrink: admitted, or why not (the budget still moving, or the loop
# behind in the budget's last window: HeartbeatBudget.steady; the plans
# with it over the rate; the plans and the confirmations of the last span over the ceiling).
Verdict = Literal["admitted", "unsteady", "plans", "pace"]


class PlanTally:
    """The interval of each session's newest plan (by node), their sum of beats a second,
    and how many run each interval (for /metrics)."""

    def __init__(self) -> None:
        self._interval: dict[str, float] = {}
        self._rate = 0.0
        # Sessions by interval, kept with each change: `longest` is asked 20 times a second
        # (master/controllers/shrink_offers.py) and must not walk 5,000 sessions.
        self._count: Counter[float] = Counter()

    def set(self, node: str, interval: float) -> None:
        """Node `node`'s session now plans `interval` (a new session, or a new plan)."""
        self.drop(node)
        if interval > 0:
            self._interval[node] = interval
            self._rate += 1.0 / interval
            self._count[interval] += 1

    def drop(self, node: str) -> None:
        """Node `node` has no session any more."""
        interval = self._interval.pop(node, None)
        if interval is not None:
            self._rate -= 1.0 / interval
            self._count[interval] -= 1
            if not self._count[interval]:
                del self._count[interval]
        if not self._interval:
            self._rate = 0.0  # no float dust left over when all are gone

    @property
    def longest(self) -> float:
        """The longest interval a session plans (0: no session)."""
        return max(self._count, default=0.0)

    @property
    def rate(self) -> float:
        """Beats a second the sessions' newest plans add up to."""
        return max(0.0, self._rate)

    def by_interval(self) -> dict[float, int]:
        """Sessions by their plan's interval (seconds, to a tenth)."""
        found: Counter[float] = Counter()
        for interval, n in self._count.items():
            found[round(interval, 1)] += n
        return dict(found)


@dataclass(frozen=True, slots=True)
class PacingSettings:
    # Confirmations admitted are counted over this many seconds, in `slots` slices: the
    # budget's own window (heartbeat_budget.py).
    span: float = 5.0
    slots: int = 10
    # The sessions' plans and the confirmations admitted (a second, over `span`) may come to
    # this far over the rate the plans are sized for, never further. Not to zero: the plans
    # fill the budget by design (a 5,000-node cluster's 20 s plans are its 250 a second), so
    # the last shrinks of a fleet come when the plans add up to the whole budget already,
    # and with no allowance would wait for ever. Going from 40 s to 20 s in one step the
    # confirmations come to at most one for each beat of an agent still on 40 s: 125 a
    # second at first, while the plans add up to 125. A loop that reads its beats in 2 s
    # bunches (a loaded machine) admits a bunch's confirmations at once: at 1.6 the last
    # of them was turned away and its agent waited 40 s more (96 s to the fleet's return
    # on a fake clock instead of 56); at 1.8 and 2 none.
    over: float = 1.0


class ShrinkPacer:
    """Admits shrinks of session plans while the plans and the confirmations admitted over
    the last span leave room for one more under the ceiling."""

    def __init__(self, settings: PacingSettings | None = None) -> None:
        self.settings = settings or PacingSettings()
        self._slice = self.settings.span / self.settings.slots
        # Confirmations admitted by slice number, the last `slots` slices.
        self._counts: dict[int, int] = {}
        self._total = 0

    def _roll(self, now: float) -> int:
        """The current slice's number, slices older than the span dropped."""
        current = int(now // self._slice)
        oldest = current - self.settings.slots + 1
        if self._counts and min(self._counts) < oldest:
            for key in [k for k in self._counts if k < oldest]:
                self._total -= self._counts.pop(key)
        return current

    def confirmations(self, now: float) -> int:
        """Confirmations admitted over the last span."""
        self._roll(now)
        return self._total

    def judge(
        self,
        now: float,
        allowed: float,
        planned: float,
        old: HeartbeatPlan,
        new: HeartbeatPlan,
        steady: bool = True,
    ) -> Verdict:
        """Whether a session may go from `old` to the shorter `new` at `now`, or why not:
        `allowed` is the rate the plans are sized for (<= 0: no cap), `planned` what the
        sessions' newest plans add up to now (PlanTally.rate), `steady` whether that rate is
        the budget's cap or has held a while, and the loop was not behind in the budget's
        last window (HeartbeatBudget.steady). An admitted shrink is
        counted as a confirmation to come."""
        if allowed <= 0:
            return "admitted"
        if not steady:
            return "unsteady"
        added = 1.0 / new.interval - 1.0 / old.interval
        if planned + added > allowed * (1 + _SLACK):
            return "plans"
        current = self._roll(now)
        confirming = (self._total + 1) / self.settings.span
        # One confirmation a span always goes: a small cluster's budget may be under one.
        if self._total and planned + added + confirming > allowed * (1 + self.settings.over):
            return "pace"
        self._counts[current] = self._counts.get(current, 0) + 1
        self._total += 1
        return "admitted"
