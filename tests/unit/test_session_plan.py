"""A session's heartbeat plans on the master's side, on a fake clock
(master/controllers/session_plan.py): longer plans are judged by at once, shorter ones
offered and judged by only once the agent says it runs them, never to an agent that does
not say, and not so often that they flap; with the agent's own rule (agent/state/plan.py)
the master never judges by a lease shorter than the agent's plan asks."""

from __future__ import annotations

import random

from agent.state.plan import RunningPlan, follow, next_beat, registered_plan
from master.controllers.heartbeats import HeartbeatPlan
from master.controllers.session_plan import PlanOffer, PlanStep, SessionPlan, ShrinkSettings

SHORT = HeartbeatPlan(20.0, 22.0)
LONG = HeartbeatPlan(40.0, 42.0)


def test_a_longer_plan_is_judged_by_at_once_and_sent_with_the_ack() -> None:
    plan = SessionPlan(SHORT, now=0.0)

    step = plan.heartbeat(5.0, running=1, wanted=LONG)

    assert step == PlanStep(judge_lease=42.0, offer=PlanOffer(2, LONG))
    assert plan.judged == 42.0
    # Old agents (they say no plan) are stretched as before.
    old = SessionPlan(SHORT, now=0.0)
    assert old.heartbeat(5.0, running=0, wanted=LONG) == PlanStep(42.0, PlanOffer(2, LONG))


def test_a_shorter_plan_is_offered_and_judged_by_only_once_the_agent_runs_it() -> None:
    plan = SessionPlan(LONG, now=0.0)

    offered = plan.heartbeat(20.0, running=1, wanted=SHORT)
    assert offered == PlanStep(judge_lease=None, offer=PlanOffer(2, SHORT))
    assert plan.judged == 42.0  # the agent may still beat every 40 s
    # A heartbeat sent before the ack arrived still says plan 1: nothing changes.
    assert plan.heartbeat(21.0, running=1, wanted=SHORT) == PlanStep()
    assert plan.judged == 42.0
    # The agent says it runs plan 2: judged by its 22 s lease from this heartbeat on.
    assert plan.heartbeat(35.0, running=2, wanted=SHORT) == PlanStep(judge_lease=22.0)
    assert plan.judged == 22.0
    assert plan.heartbeat(55.0, running=2, wanted=SHORT) == PlanStep()


def test_an_agent_that_does_not_say_its_plan_is_never_offered_a_shorter_one() -> None:
    plan = SessionPlan(LONG, now=0.0)

    for t in range(20, 400, 40):
        assert plan.heartbeat(float(t), running=0, wanted=SHORT) == PlanStep()
    assert plan.judged == 42.0


def test_a_plan_shrinks_only_by_a_quarter_or_more_and_not_within_the_hold() -> None:
    settings = ShrinkSettings(shrink_to=0.75, hold=15.0)
    plan = SessionPlan(LONG, now=0.0, settings=settings)

    # 10 % shorter: not worth a change.
    assert plan.heartbeat(30.0, 1, HeartbeatPlan(36.0, 38.0)).offer is None
    # A quarter shorter, but 10 s after the plan was given: held.
    recent = SessionPlan(LONG, now=0.0, settings=settings)
    assert recent.heartbeat(10.0, 1, HeartbeatPlan(30.0, 32.0)).offer is None
    assert recent.heartbeat(15.0, 1, HeartbeatPlan(30.0, 32.0)).offer == PlanOffer(
        2, HeartbeatPlan(30.0, 32.0)
    )
    # A stretch restarts the hold: a budget that is cut and grows back every few seconds
    # changes a plan at most once a hold.
    plan.heartbeat(40.0, 1, HeartbeatPlan(50.0, 52.0))
    assert plan.heartbeat(50.0, 2, SHORT).offer is None
    assert plan.heartbeat(55.0, 2, SHORT).offer == PlanOffer(3, SHORT)


def test_a_budget_growing_back_in_steps_brings_a_plan_all_the_way_down() -> None:
    """5,000 nodes: the budget grows 125 -> 156 -> 195 -> 244 -> 250 beats a second, a
    step per 5 s window; the plan of a node at 40 s follows to 20 s, in two changes.
    With the quarter rule alone it stopped at 25.6 s (20.5 and then 20 s are less than a
    quarter shorter than 25.6)."""
    plan = SessionPlan(LONG, now=0.0)
    now, number = 0.0, 1
    for rate in (125.0, 156.25, 195.3125, 244.140625, 250.0):
        wanted = HeartbeatPlan(5000 / rate, 5000 / rate + 2.0)
        for _ in range(3):  # a few heartbeats at each step
            now += 20.0
            step = plan.heartbeat(now, number, wanted, settled=rate >= 250.0)
            number = step.offer.number if step.offer is not None else number
    assert (plan.given, plan.judged) == (SHORT, 22.0)
    assert plan.number == 3  # 40 -> 25.6 -> 20
    # 9 % shorter: no change while the budget moves, a change once it is full.
    near = SessionPlan(HeartbeatPlan(22.0, 24.0), now=0.0)
    assert near.heartbeat(30.0, 1, SHORT).offer is None
    assert near.heartbeat(30.0, 1, SHORT, settled=True).offer == PlanOffer(2, SHORT)


def test_a_stretch_while_a_shorter_plan_is_offered_keeps_the_longest_lease_judged() -> None:
    plan = SessionPlan(LONG, now=0.0)
    plan.heartbeat(20.0, 1, SHORT)  # plan 2 offered: 20 s / 22 s
    middle = HeartbeatPlan(30.0, 32.0)

    step = plan.heartbeat(21.0, 1, middle)  # the budget was cut again: plan 3, longer

    assert step == PlanStep(judge_lease=None, offer=PlanOffer(3, middle))
    assert plan.judged == 42.0  # the agent may still run plan 1's 40 s
    # The agent ran plan 2 for a while: still not the newest, still judged by 42 s.
    assert plan.heartbeat(30.0, 2, middle) == PlanStep()
    assert plan.judged == 42.0
    assert plan.heartbeat(40.0, 3, middle) == PlanStep(judge_lease=32.0)


def test_the_master_never_judges_by_less_than_the_agents_plan_asks() -> None:
    """Both rules together, with acks and heartbeats delayed and reordered against each
    other as a busy master sends them: at every heartbeat the master receives, the lease
    it judges by from then on covers the interval and lease of every plan the agent runs
    or will run before its next heartbeat can say otherwise."""
    plans = [HeartbeatPlan(i, i + 2.0) for i in (1.0, 4.0, 10.0, 20.0, 30.0, 40.0)]
    rng = random.Random(15)
    for _ in range(300):
        master = SessionPlan(plans[0], now=0.0, settings=ShrinkSettings(hold=rng.choice([0, 5])))
        agent = registered_plan(plans[0].interval, plans[0].lease)
        in_flight: list[PlanOffer] = []  # acks the agent has not read yet
        now = 0.0
        for _ in range(60):
            now += rng.uniform(0.0, 10.0)
            # Some acks arrive at the agent (in order: one stream).
            for _ in range(rng.randint(0, len(in_flight))):
                offer = in_flight.pop(0)
                agent = follow(agent, offer.number, offer.plan.interval, offer.plan.lease)
            step = master.heartbeat(now, agent.number, rng.choice(plans), rng.random() < 0.5)
            if step.offer is not None:
                in_flight.append(step.offer)
            assert master.problems() == []
            # Whatever the agent runs now or may adopt from the acks on their way:
            may_run = [agent]
            for offer in in_flight:
                may_run.append(follow(may_run[-1], *_offer_args(offer)))
            assert all(p.lease is not None and master.judged >= p.lease for p in may_run)
            assert all(master.judged > p.interval for p in may_run)


def _offer_args(offer: PlanOffer) -> tuple[int, float, float]:
    return offer.number, offer.plan.interval, offer.plan.lease


def test_the_agent_adopts_only_newer_numbered_plans_and_unnumbered_only_longer() -> None:
    start = registered_plan(20.0, 22.0)

    assert follow(start, 2, 40.0, 42.0) == RunningPlan(2, 40.0, 42.0)
    assert follow(RunningPlan(2, 40.0, 42.0), 3, 20.0, 22.0) == RunningPlan(3, 20.0, 22.0)
    assert follow(RunningPlan(3, 20.0, 22.0), 2, 40.0, 42.0) == RunningPlan(3, 20.0, 22.0)
    # An older master's unnumbered acks: longer only.
    assert follow(start, 0, 10.0, 12.0) == start
    assert follow(start, 0, 30.0, 32.0) == RunningPlan(1, 30.0, 32.0)
    # No lease given (registration without one, or an ack without a plan): unchanged.
    assert follow(registered_plan(1.0, None), 2, 4.0, 6.0) == registered_plan(1.0, None)
    assert follow(start, 2, 0.0, 0.0) == start


def test_a_shorter_interval_makes_the_next_beat_due_sooner() -> None:
    assert next_beat(100.0, 40.0, 101.0) == 140.0
    assert next_beat(100.0, 20.0, 101.0) == 120.0  # the new interval from the last beat
    assert next_beat(100.0, 20.0, 130.0) == 130.0  # already overdue: now


def test_a_shorter_plan_is_offered_between_beats_by_the_same_rules() -> None:
    plan = SessionPlan(LONG, now=0.0)
    # No beat yet: whether the agent says its plan is not known.
    assert plan.shorter(20.0, SHORT) is None
    plan.heartbeat(20.0, running=1, wanted=LONG)
    assert plan.next_beat() == 60.0

    # Turned away by the pacer: nothing changes.
    assert plan.shorter(25.0, SHORT, admit=lambda old, new: False) is None
    assert plan.number == 1
    offer = plan.shorter(25.0, SHORT)
    assert offer == PlanOffer(2, SHORT)
    assert plan.judged == 42.0 and plan.offering
    # Not again until the agent confirms it, whatever is wanted by then.
    assert plan.shorter(60.0, HeartbeatPlan(10.0, 12.0)) is None
    assert plan.heartbeat(25.1, running=2, wanted=SHORT) == PlanStep(judge_lease=22.0)
    # An agent that does not say its plan: never.
    old = SessionPlan(LONG, now=0.0)
    old.heartbeat(20.0, running=0, wanted=LONG)
    assert old.shorter(25.0, SHORT) is None
