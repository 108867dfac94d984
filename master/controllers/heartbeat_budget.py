"""How many heartbeats a second the master takes now (pure): its cap, less while its loop is behind.

The heartbeat plan (master/controllers/heartbeats.py) stretches every node's interval so
that the whole cluster sends at most `cap` heartbeats a second: 250, sized for a master
with half a core. On a loaded machine the master gets far less. With 25 busy loops
beside it on its core (1-minute load ~40), 1,000 hollow agents joining: the master's
loop was late 0.2-0.3 s at every wake-up, its Python spent most of its CPU reading
heartbeats and writing acks (~100-250 a second, ~0.3 ms each) of the nodes already
in, JoinNode calls waited in gRPC's queue until their 15 s deadline passed, and the
join stopped at 299 of 1,000 nodes (600 s, thousands of DEADLINE_EXCEEDED attempts).
The sessions of the nodes that had joined starved the joins of the rest.

So the budget follows the loop, as TCP's window follows loss: every `window` seconds it
looks at how late the master's loop probe woke (master/metrics/looplag.py) in sum over
the window. Late for at least `far_behind` of one window, or for at least `behind` of
`sustain` windows in a row: the loop cannot keep up, and the budget is multiplied by `cut`
(down to `cap * floor_share`). Late for at most
`caught_up` of it: there is room, and the budget grows by `grow` (up to `cap`). In
between it stays. A smaller budget stretches the plans of the sessions as their next
heartbeat arrives (their leases with them), as a growing cluster does. A budget grown
back shortens them again within the session (master/controllers/session_plan.py): the
ack offers the shorter plan, and the master judges by the longer lease until the agent's
next heartbeat says it runs the shorter one (agents fence by their lease), at most once
a hold and only when a quarter shorter or more. Before that, a node stretched during
the 5,000-node join burst (which itself makes the loop late on a quiet machine) kept its
40 s beats for the rest of its session. A dead node is still found by its connection
(killed, cut or wedged), within seconds; only a node that stalls with its connection
alive and its watchdog blind waits out its lease.

However far the budget falls, it never stretches a plan beyond `LONGEST_INTERVAL` (40 s,
Kubernetes' node lease) unless the cap alone does (`planned_rate`): at the floor a
5,000-node cluster would beat every 160 s, and a stalled node go unseen that long. So
below `nodes / LONGEST_INTERVAL` the budget changes no plan, and growing back starts from
there (`least`), not from the depth it fell to. In the hollow bench at 5,000 nodes the
joins cut it to the floor (31 a second) and it spent six caught-up windows (30 s) climbing
back to the 125 the 40 s plans already were, changing nothing; the apply cut it to 75 and
it spent two more (10 s) before the first plan could shrink, and was at its cap 33 s after
all pods were Running (the bench's window then ended 35 s after, every agent still on 40 s
plans in the 50,000-pod run). One step short of the cap is the cap: the step before made
plans (20.5 s at 244 a second) too close to the cluster's 20 s to be worth shrinking again.

Why a moderately late loop must stay late a while before a cut (`sustain`), and why the
shrinks stop meanwhile (`steady` is false after a window behind): the return itself makes
the loop late. Once the budget is back at its cap, the shrinks to the 20 s plans go, and
each agent confirms its shorter plan with a beat at once (master/controllers/plan_pacing.py
lets the plans and confirmations come to twice the budget). In the hollow bench at 5,000
nodes on a loaded machine (load 13-25) that made the loop late for 30 % of a window, and
one such window cut the budget back to 125 within 10-11 s of reaching 250: all 5,000
agents stretched to 40 s again, the shrinks undone (each had cost a confirmation), and
then it grew back and the same happened again. The fleet was back on its plan within
240 s in 1 of 3 runs. A window late because of the confirmations says "slow the shrinks
down", not "the plans are too many": the first window behind stops the shrinks (nothing new
to confirm), and only a loop still behind three windows (15 s) in a row is cut for it. On
a fake clock (tests/unit/test_plan_pacing.py: a loop that keeps up with 1.1-1.3 times the
cap and not with the confirmations on top) the budget was cut 5-25 s after each return to
the cap and the fleet never stayed back for 45 s in 300 s; now it is never cut once full
and the fleet is back for good in 40-55 s. What the join collapse needed is kept by
`far_behind`: a window late for three quarters of its time or more (that loop was late
0.2-0.3 s at every 50 ms wake-up: 80-86 %) is cut at once, as before. The price: a loop
moderately late for a reason of its own (the machine's load) keeps its plans 10 s longer
before they stretch, and no shrink goes while it is.

Pure: the caller passes each probe wake-up's time and lateness in.
"""

from __future__ import annotations

from dataclasses import dataclass

from master.controllers.heartbeats import HeartbeatPlan, heartbeat_plan

# The longest heartbeat interval a cut budget makes (the cap alone may make longer ones).
LONGEST_INTERVAL = 40.0


@dataclass(frozen=True, slots=True)
class BudgetSettings:
    # The loop's lateness is summed over this many seconds, then judged.
    window: float = 5.0
    # Late for this share of the window or more: behind. The budget is cut after `sustain`
    # windows behind in a row (a return's confirmations make one or two windows late),
    # or at once when a window is `far_behind` (a loop that runs a quarter of the time).
    behind: float = 0.3
    sustain: int = 3
    far_behind: float = 0.75
    # Late for this share or less: caught up; the budget grows back.
    caught_up: float = 0.05
    cut: float = 0.5
    grow: float = 1.25
    # Never below this share of the cap (at the default 250/s: 31 a second; a 1,000-node
    # cluster beats every 32 s at most, its leases 34 s).
    floor_share: float = 0.125


class HeartbeatBudget:
    """The heartbeats a second the master plans for now; `cap` <= 0: no cap, never moves."""

    def __init__(self, cap: float, settings: BudgetSettings | None = None) -> None:
        self.cap = cap
        self.settings = settings or BudgetSettings()
        self.rate = cap
        self._since: float | None = None
        self._late = 0.0
        # When the rate last moved (None: not since it started, at the cap).
        self.moved_at: float | None = None
        # Windows judged behind in a row (0: the last window was not behind).
        self.behind_windows = 0
        # How late the probe's latest wake-up was: shrinks are not offered between beats
        # while the loop is late (master/controllers/shrink_offers.py).
        self.lag = 0.0

    @property
    def full(self) -> bool:
        """Whether the budget is all of the cap (or there is no cap): plans are as short as
        the cluster gets (master/controllers/session_plan.py shrinks to them readily)."""
        return self.cap <= 0 or self.rate >= self.cap

    def observe(self, now: float, lag: float, least: float = 0.0) -> bool:
        """One probe wake-up at `now`, `lag` seconds late; whether the budget moved. `least`:
        the rate the plans are sized for however far the budget fell (`planned_rate`: every
        node beats within LONGEST_INTERVAL), which growing starts from."""
        self.lag = lag
        if self.cap <= 0:
            return False
        if self._since is None:
            self._since = now
        self._late += max(0.0, lag)
        span = now - self._since
        if span < self.settings.window:
            return False
        share = self._late / span
        self._since, self._late = now, 0.0
        before = self.rate
        s = self.settings
        self.behind_windows = self.behind_windows + 1 if share >= s.behind else 0
        if share >= s.far_behind or self.behind_windows >= s.sustain:
            self.rate = max(self.cap * s.floor_share, self.rate * s.cut)
            self.behind_windows = 0
        elif self.behind_windows:
            pass  # behind, not yet for long: the shrinks wait (`steady`), the plans stay
        elif share <= s.caught_up:
            grown = max(self.rate, least) * s.grow
            # One step short of the cap is the cap: plans sized a few percent above the
            # cluster's own would shrink to it by too little to be offered.
            self.rate = self.cap if grown * s.grow > self.cap else grown
        if self.rate != before:
            self.moved_at = now
            return True
        return False

    def steady(self, now: float, hold: float) -> bool:
        """Whether the rate is the cap, or has not moved for `hold` seconds: plans sized by
        it are worth shrinking to (a budget growing back moves every window, and the plans
        of each step between would be shrunk again at the next); and the last window was not
        behind (the shrinks' confirmations are beats on top of the plans: they stop first)."""
        if self.behind_windows:
            return False
        return self.full or self.moved_at is None or now - self.moved_at >= hold


def cluster_plan(
    nodes: int, base_interval: float, base_lease: float, budget: HeartbeatBudget
) -> HeartbeatPlan:
    """The heartbeat plan for a cluster of `nodes` now: what a node registering gets, and
    what the sessions' plans move to (master/controllers/session_plan.py)."""
    return heartbeat_plan(nodes, base_interval, base_lease, planned_rate(nodes, budget))


def planned_rate(nodes: int, budget: HeartbeatBudget, longest: float = LONGEST_INTERVAL) -> float:
    """The heartbeats a second to plan `nodes` for: the budget, but no less than makes
    every node beat within `longest` seconds, nor more than the cap."""
    if budget.cap <= 0:
        return budget.cap
    return min(budget.cap, max(budget.rate, nodes / longest))
