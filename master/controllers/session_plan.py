"""One session's heartbeat plan on the master's side: stretch at once, shrink by handshake (pure).

The plan a node registered with (master/controllers/heartbeats.py) changes in its session
when the plan for the cluster now differs: longer when the cluster grew or the master's
heartbeat budget was cut (master/controllers/heartbeat_budget.py), shorter when the budget
grew back or the cluster shrank. Without shrinking, nodes stretched during a 5,000-node
join burst (the burst itself makes the master's loop late and cuts the budget) kept
40 s intervals for the rest of their session: 87 acks a second instead of 250, and a
stalled node found after 38 s instead of 22.

The two directions are not alike, because both sides judge silence by the lease: the agent
fences itself by it (agent/fencing.py) and the master declares the node dead and replaces
its pods when it runs out. The master must never judge by a lease shorter than the one
the agent beats and fences by.

- Longer: the master judges by the longer lease from the moment it decides (the agent may
  beat by the old, shorter interval a while longer: early, never late) and the next ack
  carries the plan.
- Shorter: the next ack offers the plan, numbered; the master keeps judging by the lease
  it judged by until a heartbeat says the agent runs that plan (or a later one). An agent
  adopts a plan only with a higher number than its own (agent/state/lease.py), so from
  that heartbeat on it beats by the shorter interval. Until then, an agent that has
  adopted it fences earlier than the master would judge: safe. Only agents whose
  heartbeats say their plan (`plan` > 0) are offered shorter plans; an older agent keeps
  its plan until it registers again, as before.

So that plans do not flap with a budget that moves every few seconds, a plan shrinks only
when the new interval is at most `shrink_to` (75 %) of the session's and no sooner than
`hold` seconds after the session's plan last changed. Once the budget has grown all the way
back (`settled`: the plan is the shortest the cluster gets), `settled_shrink_to` (95 %)
is enough: the budget grows by 1.25 a step, and a node at 40 s went to 25.6 s at 195 beats a
second, then not to 20 s at the cap (22 % shorter, under the quarter), and a stalled node
there waited out 27.6 s instead of 22. Stretching is not held back: it is the master's
protection when it cannot keep up.

Shrinks are paced besides: the agent confirms a shorter plan with a heartbeat at once, one
beat more than its plan, so a shrink goes only while the master's budget has room for it
(`admit`: ShrinkPacer.judge, master/controllers/plan_pacing.py), else later.

A shrink is offered with the ack of a heartbeat (`heartbeat`) or between beats (`shorter`,
sent on the session stream as an ack of the last beat, picked by
master/controllers/shrink_offers.py). Offered only with acks, a shrink turned away for
want of room waited for the node's next beat, a whole stretched interval (up to 40 s), and
after a burst the stretched beats came in bunches: on a fake clock the fleet took 96 s to
return. The agent takes a plan from any ack (agent/state/plan.py), so the offer between
beats needs nothing new on the wire.

Pure: the caller passes the time, the plan the agent said it runs and the plan for the
cluster now, and applies the step (the lease to judge by, the plan the next ack carries).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from master.controllers.heartbeats import HeartbeatPlan

# The registration's plan is plan 1 of its session.
FIRST_PLAN = 1


@dataclass(frozen=True, slots=True)
class ShrinkSettings:
    # A shorter plan is offered only if its interval is at most this share of the session's.
    shrink_to: float = 0.75
    # ... or this share, when the wanted plan is the cluster's shortest (the budget is full).
    settled_shrink_to: float = 0.95
    # ... and no sooner than this many seconds after the session's plan last changed.
    hold: float = 15.0


@dataclass(frozen=True, slots=True)
class PlanOffer:
    """A plan for the next ack: its number in the session, its interval and lease."""

    number: int
    plan: HeartbeatPlan


@dataclass(frozen=True, slots=True)
class PlanStep:
    # Judge the node by this lease from now (None: the lease it is judged by stays).
    judge_lease: float | None = None
    # The next ack carries this plan (None: no change to send).
    offer: PlanOffer | None = None


class SessionPlan:
    """A session's plans: the newest given (offered or in force) and the lease judged by."""

    def __init__(
        self, plan: HeartbeatPlan, now: float, settings: ShrinkSettings | None = None
    ) -> None:
        self.settings = settings or ShrinkSettings()
        # The newest plan given in this session and its number.
        self.number = FIRST_PLAN
        self.given = plan
        # The lease the master judges the node by: the newest plan's, or while a shorter
        # plan is offered and not yet run, the longest of the plans the agent may run.
        self.judged = plan.lease
        self.changed_at = now
        # When the last heartbeat arrived (the registration's time until one does), and
        # whether the agent's heartbeats say their plan (only those are offered shrinks).
        self.beat_at = now
        self.says_plan = False

    @property
    def offering(self) -> bool:
        """Whether a shorter plan waits for the agent to say it runs it."""
        return self.judged > self.given.lease

    def heartbeat(
        self,
        now: float,
        running: int,
        wanted: HeartbeatPlan,
        settled: bool = False,
        admit: Callable[[HeartbeatPlan, HeartbeatPlan], bool] | None = None,
    ) -> PlanStep:
        """A heartbeat saying the agent runs plan `running` (0: an agent that does not say)
        arrived at `now`; `wanted` is the plan for the cluster now, `settled` whether it is
        the cluster's shortest (the master's heartbeat budget is full), `admit(old, new)`
        whether the budget has room for a shrink now (None: always). What changes."""
        judge: float | None = None
        self.beat_at = now
        self.says_plan = running > 0
        if running >= self.number and self.offering:
            # The agent runs the newest plan: judge it by that plan's lease from now.
            self.judged = self.given.lease
            judge = self.judged
        if wanted.lease > self.given.lease:
            # Longer: judged by at once (never below what the agent may still run).
            self._give(now, wanted)
            if wanted.lease > self.judged:
                self.judged = wanted.lease
                judge = self.judged
            return PlanStep(judge, PlanOffer(self.number, wanted))
        return PlanStep(judge, self._offer_shorter(now, wanted, settled, admit))

    def shorter(
        self,
        now: float,
        wanted: HeartbeatPlan,
        settled: bool = False,
        admit: Callable[[HeartbeatPlan, HeartbeatPlan], bool] | None = None,
    ) -> PlanOffer | None:
        """A shorter plan to offer now, between heartbeats (sent on the session stream at
        once), or None: by the same rules as with an ack, and only to an agent whose last
        heartbeat said its plan and that has confirmed every plan offered so far (a
        second offer before the first is confirmed would cost a second confirmation)."""
        if self.offering:
            return None
        return self._offer_shorter(now, wanted, settled, admit)

    def next_beat(self) -> float:
        """When the agent's next heartbeat is expected: one interval of the newest plan
        after the last (the agent may still beat by an older, shorter one: early)."""
        return self.beat_at + self.given.interval

    def _offer_shorter(
        self,
        now: float,
        wanted: HeartbeatPlan,
        settled: bool,
        admit: Callable[[HeartbeatPlan, HeartbeatPlan], bool] | None,
    ) -> PlanOffer | None:
        if (
            self.says_plan
            and self._shrinks_to(now, wanted, settled)
            and (admit is None or admit(self.given, wanted))
        ):
            # Shorter: offered; judged by the old lease until the agent says it runs it.
            self._give(now, wanted)
            return PlanOffer(self.number, wanted)
        return None

    def _shrinks_to(self, now: float, wanted: HeartbeatPlan, settled: bool) -> bool:
        s = self.settings
        share = s.settled_shrink_to if settled else s.shrink_to
        return (
            wanted.interval <= self.given.interval * share
            and wanted.lease < self.given.lease
            and now - self.changed_at >= s.hold
        )

    def _give(self, now: float, plan: HeartbeatPlan) -> None:
        self.number += 1
        self.given = plan
        self.changed_at = now

    def problems(self) -> list[str]:
        """Broken invariants (for tests): the master never judges by less than the newest
        plan's lease."""
        found: list[str] = []
        if self.judged < self.given.lease:
            found.append(f"judged by {self.judged}s, shorter than the plan's {self.given.lease}s")
        if self.number < FIRST_PLAN:
            found.append(f"plan number {self.number}")
        return found
