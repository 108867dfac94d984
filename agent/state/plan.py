"""Which heartbeat plan (interval, lease) the agent runs, as the master's acks change it (pure).

A session starts on its registration's plan, plan 1. The master may give a new plan in a
heartbeat ack: longer when the cluster grew or its heartbeat budget was cut, shorter when
the budget grew back or the cluster shrank (master/controllers/session_plan.py). A numbered
plan newer than the one run is adopted whichever way it goes: the master judges by the
longer of the old and new leases until a heartbeat says the agent runs the new one, so
fencing by the new lease from the ack on is early, never late. The agent then says the
plan's number in every heartbeat. A shorter plan it confirms with a heartbeat at once
(`confirms_at_once`), so the master judges it by the shorter lease one round trip after
the ack, and beats by the shorter interval from that beat on.

An ack without a number (a master older than numbered plans) can only stretch the plan,
as before: such a master judges by the longer lease from the moment it sends it and
never by a shorter one.

Used by the agent's lease state (agent/state/lease.py) and by the hollow agents of the
scale bench (tests/bench/hollow_fleet.py).
"""

from __future__ import annotations

from dataclasses import dataclass

# The registration's plan is plan 1 of its session (0 in a heartbeat: "I do not say").
FIRST_PLAN = 1


@dataclass(frozen=True, slots=True)
class RunningPlan:
    number: int
    interval: float
    # None: the master gave no lease (fencing has nothing to go by).
    lease: float | None


def registered_plan(interval: float, lease: float | None) -> RunningPlan:
    return RunningPlan(FIRST_PLAN, interval, lease)


def follow(plan: RunningPlan, number: int, interval: float, lease: float) -> RunningPlan:
    """The plan to run after an ack gave plan `number` (0: unnumbered) of `interval` and
    `lease` (0: none given): the new plan, or `plan` unchanged."""
    if lease <= 0 or plan.lease is None:
        return plan
    if number <= 0:
        # An older master: a lease only grows within a session.
        if lease <= plan.lease:
            return plan
        return RunningPlan(plan.number, max(plan.interval, interval), lease)
    if number <= plan.number:
        return plan  # old news: a later plan is already run
    return RunningPlan(number, interval if interval > 0 else plan.interval, lease)


def confirms_at_once(was: RunningPlan, now: RunningPlan) -> bool:
    """Whether going from plan `was` to `now` calls for a heartbeat at once: a newer
    numbered plan with a shorter lease. The master judges by the old, longer lease until a
    heartbeat says the new plan's number; waiting for the next beat left it judging by a
    40 s lease for up to one new interval after the agent had taken the 20 s one, and a
    node that stalled in between was found that much later. A longer plan needs nothing:
    the master judges by it from the ack on."""
    return (
        now.number > was.number
        and now.lease is not None
        and was.lease is not None
        and now.lease < was.lease
    )


def next_beat(last_beat: float, interval: float, now: float) -> float:
    """When the next heartbeat is due: one interval after the last, or now if that has
    passed (a shorter plan arrived after more than its interval of waiting)."""
    return max(now, last_beat + interval)
