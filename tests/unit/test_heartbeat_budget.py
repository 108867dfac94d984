"""The heartbeat budget on a fake clock (master/controllers/heartbeat_budget.py): a master
whose loop runs late takes fewer heartbeats a second, so the sessions of the nodes already
in do not starve the joins of the rest; and the node sessions follow it."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest

from kernel.clock import FakeClock
from master.api.node_servicer import NodeServicer
from master.controllers.heartbeat_budget import BudgetSettings, HeartbeatBudget, planned_rate
from master.controllers.heartbeats import heartbeat_plan
from master.controllers.manager import ControllerManager
from master.controllers.nodes import LeaseTable
from master.model import Node, NodeStatus, ObjectMeta, Resources
from master.state import ClusterState
from master.store import MemoryStore
from protos import node_pb2
from tests.unit.test_node_session import _beat_once

PROBE = 0.05


def _run(budget: HeartbeatBudget, start: float, seconds: float, lag: float) -> float:
    """Probe wake-ups for `seconds` from `start`, each `lag` late; the time at the end."""
    now = start
    while now < start + seconds:
        now += PROBE + lag
        budget.observe(now, lag)
    return now


def test_a_loop_that_keeps_up_keeps_the_cap() -> None:
    budget = HeartbeatBudget(250.0)

    _run(budget, 0.0, 60.0, lag=0.002)

    assert budget.rate == 250.0


def test_a_loop_behind_halves_the_budget_each_window_down_to_its_floor() -> None:
    budget = HeartbeatBudget(250.0)

    now = _run(budget, 0.0, 5.5, lag=0.3)  # late 0.3 s of every 0.35: behind
    assert budget.rate == 125.0
    now = _run(budget, now, 5.5, lag=0.3)
    assert budget.rate == 62.5
    _run(budget, now, 60.0, lag=0.3)
    assert budget.rate == pytest.approx(250.0 * BudgetSettings().floor_share)


def test_the_budget_grows_back_once_the_loop_catches_up_and_holds_in_between() -> None:
    budget = HeartbeatBudget(250.0)
    now = _run(budget, 0.0, 11.0, lag=0.3)
    assert budget.rate == 62.5

    now = _run(budget, now, 5.5, lag=0.01)  # late 0.01 of 0.06 s: 17 %, neither
    assert budget.rate == 62.5
    _run(budget, now, 60.0, lag=0.001)
    assert budget.rate == 250.0


def test_no_cap_means_no_budget_to_cut() -> None:
    budget = HeartbeatBudget(0.0)

    _run(budget, 0.0, 30.0, lag=1.0)

    assert budget.rate == 0.0


def test_a_master_whose_loop_is_behind_stretches_its_nodes_heartbeats() -> None:
    """Sessions of the nodes in already stretch their beats (with the next ack) and new
    ones start stretched: the beats they would have sent are CPU the joins need."""
    budget = HeartbeatBudget(10.0)
    servicer, leases, reply = asyncio.run(_servicer_of_ten_nodes(budget, FakeClock()))
    context: Any = None
    # 10 nodes, at most 10 beats a second: every second, a 3 s lease.
    assert (reply.heartbeat_interval_seconds, reply.lease_seconds) == (1.0, 3.0)

    _run(budget, 0.0, 5.5, lag=0.3)  # the loop falls behind: 5 beats a second

    (ack,) = asyncio.run(_beat_once(servicer, reply.session_id))
    assert (ack.heartbeat_interval_seconds, ack.lease_seconds) == (2.0, 4.0)
    assert leases.lease_of("n1") == 4.0
    other = node_pb2.NodeInfo(name="n2", address="127.0.0.1")
    late = asyncio.run(servicer.RegisterNode(node_pb2.RegisterNodeRequest(node=other), context))
    assert (late.heartbeat_interval_seconds, late.lease_seconds) == (2.0, 4.0)


async def _servicer_of_ten_nodes(
    budget: HeartbeatBudget, clock: FakeClock
) -> tuple[NodeServicer, LeaseTable, node_pb2.RegisterNodeResponse]:
    state = ClusterState(MemoryStore(), clock)
    leases = LeaseTable()
    manager = ControllerManager(state, clock, leases)
    servicer = NodeServicer(state, leases, manager, clock, 1, 3, heartbeat_budget=budget)
    for i in range(2, 11):
        state.put(
            Node(
                meta=ObjectMeta(name=f"n{i}"),
                address="127.0.0.1",
                capacity=Resources(2000, 2**30),
                allocatable=Resources(2000, 2**30),
                status=NodeStatus(ready=True),
            )
        )
    info = node_pb2.NodeInfo(name="n1", address="127.0.0.1")
    context: Any = None
    reply = await servicer.RegisterNode(node_pb2.RegisterNodeRequest(node=info), context)
    return servicer, leases, reply


def test_a_budget_grown_back_shortens_a_stretched_plan_once_the_agent_runs_it() -> None:
    """Stretched while the loop was behind, a node's plan shrinks back in its session when
    the budget grows again: offered in an ack, judged by only once the agent's heartbeat
    says it runs it. Before, a plan never shrank within a session: nodes stretched during
    a join burst kept 40 s beats for good."""

    async def scenario() -> None:
        clock = FakeClock()
        budget = HeartbeatBudget(10.0)
        servicer, leases, registered = await _servicer_of_ten_nodes(budget, clock)
        session = registered.session_id
        now = _run(budget, 0.0, 11.0, lag=0.3)  # behind: 2.5 beats a second
        (stretched,) = await _beat_once(servicer, session, plan=1)
        assert (stretched.heartbeat_interval_seconds, stretched.lease_seconds) == (4.0, 6.0)
        assert stretched.plan == 2
        assert leases.lease_of("n1") == 6.0

        _run(budget, now, 60.0, lag=0.001)  # caught up: the cap again, 1 s beats
        clock.advance(60.0)
        (offer,) = await _beat_once(servicer, session, plan=2)
        assert (offer.heartbeat_interval_seconds, offer.lease_seconds, offer.plan) == (1, 3, 3)
        assert leases.lease_of("n1") == 6.0  # the agent may still beat every 4 s
        (ack,) = await _beat_once(servicer, session, plan=3)  # it says it runs plan 3
        assert leases.lease_of("n1") == 3.0
        assert (ack.heartbeat_interval_seconds, ack.plan) == (0.0, 0)  # nothing new

    asyncio.run(scenario())


def test_an_agent_that_does_not_say_its_plan_keeps_its_stretched_plan() -> None:
    """An older agent takes longer plans only: a shorter one is never offered to it, and
    it is judged by its longer lease for the rest of its session, as before."""

    async def scenario() -> None:
        clock = FakeClock()
        budget = HeartbeatBudget(10.0)
        servicer, leases, registered = await _servicer_of_ten_nodes(budget, clock)
        session = registered.session_id
        now = _run(budget, 0.0, 11.0, lag=0.3)
        (stretched,) = await _beat_once(servicer, session)
        assert stretched.lease_seconds == 6.0

        _run(budget, now, 60.0, lag=0.001)
        clock.advance(60.0)
        (ack,) = await _beat_once(servicer, session)
        assert (ack.heartbeat_interval_seconds, ack.lease_seconds) == (0.0, 0.0)
        assert leases.lease_of("n1") == 6.0

    asyncio.run(scenario())


def test_a_cut_budget_never_stretches_beats_beyond_forty_seconds() -> None:
    """At its floor (31 a second) 5,000 nodes would beat every 160 s, and a stalled node
    go unseen that long; Kubernetes' node lease is 40 s."""
    budget = HeartbeatBudget(250.0)
    _run(budget, 0.0, 60.0, lag=0.3)  # at the floor

    big = heartbeat_plan(5000, 1.0, 3.0, planned_rate(5000, budget))
    small = heartbeat_plan(1000, 1.0, 3.0, planned_rate(1000, budget))

    assert (big.interval, big.lease) == (40.0, 42.0)
    assert small.interval == pytest.approx(1000 / 31.25)
    # The cap alone may stretch further (a very large cluster), as before.
    assert planned_rate(20000, HeartbeatBudget(250.0)) == 250.0
    assert planned_rate(100, HeartbeatBudget(0.0)) == 0.0


def test_the_plans_are_summed_over_the_streaming_sessions_only() -> None:
    """A registration that never opens its stream beats never: counted, fifteen of them
    (an integration test's nodes registered through the API alone) made the plans add up to
    more than the budget and no shrink ever went (master/controllers/plan_pacing.py)."""

    async def scenario() -> None:
        clock = FakeClock()
        budget = HeartbeatBudget(10.0)
        servicer, _, registered = await _servicer_of_ten_nodes(budget, clock)
        assert servicer.plan_tally.rate == 0.0  # registered, no stream yet

        seen: list[float] = []
        original = servicer.plan_tally.set

        def spy(node: str, interval: float) -> None:
            original(node, interval)
            seen.append(servicer.plan_tally.rate)

        servicer.plan_tally.set = spy  # type: ignore[method-assign]
        await _beat_once(servicer, registered.session_id, plan=1)
        assert seen == [1.0]  # its stream: one 1 s plan
        assert servicer.plan_tally.rate == 0.0  # and the stream ended

    asyncio.run(scenario())


def test_a_shrink_turned_away_at_a_beat_is_offered_before_the_next_one() -> None:
    """A beat whose shrink the pacer turned away (the budget still growing back) left its
    node on the stretched plan until its next beat, up to 40 s at 5,000 nodes. Once the
    budget has room, the master offers the shrink at once on the session stream, as an ack
    of the last beat carrying the plan; the lease stays the longer one until the agent's
    heartbeat says it runs the new plan (master/controllers/shrink_offers.py)."""

    async def scenario() -> None:
        clock = FakeClock()
        budget = HeartbeatBudget(10.0)
        servicer, leases, registered = await _servicer_of_ten_nodes(budget, clock)
        up: asyncio.Queue[node_pb2.AgentMessage | None] = asyncio.Queue()
        down: asyncio.Queue[node_pb2.HeartbeatAck] = asyncio.Queue()

        async def messages() -> AsyncIterator[node_pb2.AgentMessage]:
            hello = node_pb2.SessionHello(node_name="n1", session_id=registered.session_id)
            yield node_pb2.AgentMessage(hello=hello)
            while (msg := await up.get()) is not None:
                yield msg

        async def stream() -> None:
            context: Any = None
            async for msg in servicer.StreamSession(messages(), context):
                if msg.WhichOneof("body") == "heartbeat_ack":
                    down.put_nowait(msg.heartbeat_ack)

        async def beat(sequence: int, plan: int) -> node_pb2.HeartbeatAck:
            up.put_nowait(
                node_pb2.AgentMessage(heartbeat=node_pb2.Heartbeat(sequence=sequence, plan=plan))
            )
            return await asyncio.wait_for(down.get(), 5)

        session = asyncio.create_task(stream())
        budget.rate, budget.moved_at = 2.5, clock.monotonic()  # cut by a burst
        stretched = await beat(1, plan=1)
        assert (stretched.heartbeat_interval_seconds, stretched.plan) == (4.0, 2)

        clock.advance(20.0)
        budget.rate, budget.moved_at = 7.5, clock.monotonic()  # growing back: unsteady
        assert servicer.offer_shrinks() == 0
        turned_away = await beat(2, plan=2)
        assert turned_away.plan == 0  # no plan with this ack

        clock.advance(1.0)  # the next beat is due 3 s from now
        budget.rate = 10.0  # full: shrinks may go
        assert servicer.offer_shrinks() == 1
        offer = await asyncio.wait_for(down.get(), 5)  # no heartbeat asked for it
        assert (offer.heartbeat_interval_seconds, offer.lease_seconds, offer.plan) == (1, 3, 3)
        assert offer.sequence == 2  # an ack of the last beat
        assert leases.lease_of("n1") == 6.0  # the agent may still beat every 4 s
        assert servicer.offer_shrinks() == 0  # offered once

        confirmed = await beat(3, plan=3)
        assert confirmed.plan == 0
        assert leases.lease_of("n1") == 3.0
        up.put_nowait(None)
        await session

    asyncio.run(scenario())


def test_a_loop_moderately_behind_is_cut_only_once_it_stays_behind() -> None:
    """A window or two late (a return's confirmations on a loaded machine) stop the shrinks
    and keep the plans; three in a row cut, as one window far behind does at once."""
    budget = HeartbeatBudget(250.0)
    budget.observe(0.0, 0.0)  # the first window starts at 0
    now = _run(budget, 0.0, 5.01, lag=0.03)  # late 0.03 of every 0.08 s: 37 %
    assert budget.rate == 250.0 and budget.behind_windows == 1
    assert not budget.steady(now, 15.0)  # full, but the shrinks wait
    now = _run(budget, now, 5.01, lag=0.03)
    assert budget.rate == 250.0 and not budget.steady(now, 15.0)
    now = _run(budget, now, 5.01, lag=0.03)
    assert budget.rate == 125.0  # behind 15 s in a row: cut
    assert budget.behind_windows == 0

    # One window caught up in between starts the count again, and lets the shrinks go.
    budget = HeartbeatBudget(250.0)
    budget.observe(0.0, 0.0)  # the first window starts at 0
    now = _run(budget, 0.0, 10.02, lag=0.03)
    now = _run(budget, now, 5.01, lag=0.001)
    assert budget.steady(now, 15.0) and budget.rate == 250.0
    now = _run(budget, now, 10.02, lag=0.03)
    assert budget.rate == 250.0

    # Far behind (a loop running a quarter of the time or less): cut at once.
    budget = HeartbeatBudget(250.0)
    budget.observe(0.0, 0.0)  # the first window starts at 0
    _run(budget, 0.0, 5.01, lag=0.2)  # late 0.2 of every 0.25 s: 80 %
    assert budget.rate == 125.0
