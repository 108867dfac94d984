"""Which stretched sessions are offered a shorter plan between their beats, and how many a
tick (master/controllers/shrink_offers.py), on a fake clock."""

from __future__ import annotations

from master.controllers.heartbeats import HeartbeatPlan
from master.controllers.session_plan import PlanOffer, SessionPlan
from master.controllers.shrink_offers import (
    NEAR_BEAT,
    OFFER_TICK,
    OfferPace,
    order_shrinks,
    pick_shrinks,
)

LONG = HeartbeatPlan(40.0, 42.0)
SHORT = HeartbeatPlan(20.0, 22.0)


def _beaten(at: float, running: int = 1) -> SessionPlan:
    """A session on the 40 s plan (given long ago) whose agent last beat at `at`."""
    plan = SessionPlan(LONG, now=-100.0)
    plan.heartbeat(at, running=running, wanted=LONG)
    return plan


def _always(old: HeartbeatPlan, new: HeartbeatPlan) -> bool:
    return True


def test_the_sessions_whose_next_beat_is_furthest_off_go_first() -> None:
    sessions = {"soon": _beaten(-30.0), "late": _beaten(-1.0), "mid": _beaten(-20.0)}
    queue = order_shrinks(0.0, sessions.items(), SHORT)
    assert [n for n, _ in queue] == ["late", "mid", "soon"]

    picked = pick_shrinks(0.0, queue, SHORT, False, 2, False, _always)

    assert picked == [("late", PlanOffer(2, SHORT)), ("mid", PlanOffer(2, SHORT))]
    assert [n for n, _ in queue] == ["soon"]  # left for the next tick
    assert sessions["soon"].number == 1
    assert sessions["late"].judged == 42.0  # judged by the old lease until it says plan 2


def test_no_offer_to_a_beat_due_soon_an_agent_that_does_not_say_its_plan_or_one_offered() -> None:
    due = _beaten(-40.0 + NEAR_BEAT / 2)  # its ack will carry the offer
    old_agent = _beaten(-1.0, running=0)
    offered = _beaten(-1.0)
    offered.shorter(0.0, SHORT)  # not yet confirmed
    short = SessionPlan(SHORT, now=-100.0)
    short.heartbeat(-1.0, running=1, wanted=SHORT)
    sessions = [("due", due), ("old", old_agent), ("offered", offered), ("short", short)]

    assert order_shrinks(0.0, sessions, SHORT) == []
    # Ordered a while ago: the beat due soon now, and a session gone, leave the queue.
    queue = order_shrinks(-5.0, [("due", due), ("gone", _beaten(-1.0))], SHORT)
    assert len(queue) == 2
    gone = pick_shrinks(0.0, queue, SHORT, False, 10, False, _always, lambda n, p: n != "gone")
    assert gone == [] and queue == []


def test_the_pick_ends_at_the_pacers_first_no_and_while_the_loop_is_late() -> None:
    queue = order_shrinks(0.0, [(f"n{i}", _beaten(-float(i))) for i in range(5)], SHORT)
    plans = dict(queue)
    answers = iter([True, True, False, True])
    asked: list[tuple[HeartbeatPlan, HeartbeatPlan]] = []

    def pacer(old: HeartbeatPlan, new: HeartbeatPlan) -> bool:
        asked.append((old, new))
        return next(answers)

    assert pick_shrinks(0.0, queue, SHORT, False, 10, True, pacer) == []
    assert asked == [] and len(queue) == 5  # a late loop: not even asked
    picked = pick_shrinks(0.0, queue, SHORT, False, 10, False, pacer)
    assert [n for n, _ in picked] == ["n0", "n1"]
    assert asked == [(LONG, SHORT)] * 3
    assert plans["n2"].number == 1  # the one turned away keeps its plan, first in the queue
    assert [n for n, _ in queue] == ["n2", "n3", "n4"]


def test_the_pace_spreads_half_the_pacers_room_over_the_ticks() -> None:
    pace = OfferPace()
    # 250 a second allowed, the plans at 125, the ceiling twice the budget: room for 375
    # confirmations a second, capped at the budget, half of it between beats: 125 a second.
    first = pace.allowance(0.0, 250.0, 125.0, over=1.0)
    assert first == int(2 * 125 * OFFER_TICK + 1)  # idle before: two ticks' worth
    pace.spent(first)
    offered = 0
    for k in range(1, 201):  # ten seconds of ticks
        allowance = pace.allowance(k * OFFER_TICK, 250.0, 125.0, over=1.0)
        pace.spent(allowance)
        offered += allowance
    assert 1240 <= offered <= 1250
    # Plans already at the ceiling: one offer (the pacer judges it), then nothing.
    full = OfferPace()
    assert full.allowance(0.0, 250.0, 500.0, over=1.0) == 1
    full.spent(1)
    assert full.allowance(1.0, 250.0, 500.0, over=1.0) == 0
