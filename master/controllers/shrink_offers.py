"""Which stretched sessions are offered a shorter heartbeat plan now, between their beats (pure).

After a burst the master's heartbeat budget is cut, the agents stretched to up to 40 s, and
once the budget is back their plans shrink within their sessions
(master/controllers/session_plan.py), paced by the budget's room for the confirmations
(master/controllers/plan_pacing.py). Offered only in the ack of a node's heartbeat, a
shrink the pacer turned away waited for the node's next beat, a whole stretched interval;
and the stretched beats came in bunches (the nodes were stretched by the acks of the few
seconds the budget was cut, and a loaded master reads its beats in bunches): the pacer's
room went unused between bunches and filled within them. On a fake clock a fleet of 500
(5,000 to scale) took 96 s to return.

So every `OFFER_TICK` the master also picks sessions to offer a shrink at once, sent on
their session stream (the agent takes a plan from any ack, agent/state/plan.py), from a
queue it orders once a second: the ones whose next beat is furthest off first (they would
wait longest; walking 5,000 sessions each tick cost a quarter of a core), none whose beat is due
within `NEAR_BEAT` (its ack will carry the offer, no extra message), at most `most` a tick
(`OfferPace`: half the pacer's room spread over the second, so that the confirmations do
not come in one bunch of hundreds, and each shrunk node's next beats fall one after
another, not together), the first the pacer turns away ending the pick, and none while the
master's loop is late (the lag probe's latest wake-up): a loop already behind reads the
confirmations late, and a late loop cuts the budget again.

Pure: the caller passes the time, the sessions' plans, the plan for the cluster now and
the pacer's verdict; it sends the offers picked and counts their plans.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

from master.controllers.heartbeats import HeartbeatPlan
from master.controllers.session_plan import PlanOffer, SessionPlan

# How often shrinks are picked (the loop-lag probe's own interval).
OFFER_TICK = 0.05
# A session whose next beat is due within this many seconds gets its offer with its ack.
NEAR_BEAT = 1.0
# The loop-lag probe woke this late or later: no offers between beats until it does not.
LATE_SECONDS = 0.05
# Offers a tick when the budget has no cap (no pacing at all).
UNCAPPED_PER_TICK = 50
# How often the sessions are walked for those to offer shrinks to, and in what order
# (order_shrinks); while a walk finds none, the next one waits IDLE_REORDER_SECONDS (older
# agents that do not say their plan keep theirs for good, and are walked that rarely).
REORDER_SECONDS = 1.0
IDLE_REORDER_SECONDS = 10.0


# The share of the pacer's room a second (capped at the budget) offered between beats; the
# rest is left to the shrinks offered with the beats' own acks. All of it (capped or not)
# took the heartbeats the master received over 5 s to 2.3 times the budget on a fake clock
# (tests/unit/test_plan_pacing.py), past the pacer's ceiling of twice; half kept them
# under it, and the bunched fleet was back in 44 s instead of 38.
BETWEEN_SHARE = 0.5


class OfferPace:
    """How many shrinks the ticks may offer between beats: a rate a second, carried over
    from tick to tick in fractions (5,000 nodes' 250 beats a second is 12.5 a tick, a
    500-node cluster's 25 is 1.25), at most two ticks' worth and one offer at once."""

    def __init__(self) -> None:
        self._credit = 0.0
        self._at: float | None = None

    def allowance(
        self, now: float, allowed: float, planned: float, over: float, tick: float = OFFER_TICK
    ) -> int:
        """Offers this tick may make at `now`: BETWEEN_SHARE of the room a second under the
        pacer's ceiling (`allowed` x (1 + `over`), less the `planned` beats a second of the
        sessions' plans), no more than `allowed` a second. Offered all at once, the pacer's
        room (it counts confirmations over 5 s) was 1,600 confirmations in one tick."""
        if allowed <= 0:
            return UNCAPPED_PER_TICK
        rate = BETWEEN_SHARE * max(0.0, min(allowed * (1 + over) - planned, allowed))
        most = 2 * rate * tick + 1.0
        # Never asked before: as much as it ever holds (one offer at least).
        gained = most if self._at is None else rate * max(0.0, now - self._at)
        self._at = now
        self._credit = min(self._credit + gained, most)
        return int(self._credit)

    def spent(self, offers: int) -> None:
        """`offers` of the allowance went out."""
        self._credit = max(0.0, self._credit - offers)


def order_shrinks(
    now: float, sessions: Iterable[tuple[str, SessionPlan]], wanted: HeartbeatPlan
) -> list[tuple[str, SessionPlan]]:
    """The sessions (node, plan) that may be offered `wanted` between beats, the one whose
    next beat is furthest off first: stretched beyond it, their agent saying its plan, no
    offer unconfirmed, the next beat not due within NEAR_BEAT. Walks every session (14 ms
    at 5,000 on a loaded machine): made once every REORDER_SECONDS, not every tick."""
    waiting = sorted(
        (
            (plan.next_beat(), node, plan)
            for node, plan in sessions
            if plan.says_plan
            and not plan.offering
            and plan.given.interval > wanted.interval
            and plan.next_beat() - now > NEAR_BEAT
        ),
        key=lambda t: -t[0],
    )
    return [(node, plan) for _, node, plan in waiting]


def pick_shrinks(
    now: float,
    queue: list[tuple[str, SessionPlan]],
    wanted: HeartbeatPlan,
    settled: bool,
    most: int,
    late: bool,
    admit: Callable[[HeartbeatPlan, HeartbeatPlan], bool],
    live: Callable[[str, SessionPlan], bool] = lambda node, plan: True,
) -> list[tuple[str, PlanOffer]]:
    """The sessions to offer `wanted` to now, taken from the front of `queue` (order_shrinks;
    those taken, and those no longer `live` or due to beat within NEAR_BEAT, leave it), and
    their offers (each session's plan has given it: SessionPlan.shorter): at most `most`,
    none if `late`, until `admit(old, new)` (the pacer) says no; the one it turned away
    stays first in the queue."""
    if late or most <= 0:
        return []
    refused = False

    def judged(old: HeartbeatPlan, new: HeartbeatPlan) -> bool:
        nonlocal refused
        refused = not admit(old, new)
        return not refused

    picked: list[tuple[str, PlanOffer]] = []
    taken = 0
    for node, plan in queue:
        if not live(node, plan) or plan.next_beat() - now <= NEAR_BEAT:
            taken += 1
            continue
        offer = plan.shorter(now, wanted, settled, judged)
        if refused:
            break
        taken += 1
        if offer is not None:
            picked.append((node, offer))
            if len(picked) >= most:
                break
    del queue[:taken]
    return picked
