"""The agent's Session + Worker in-process (FakeRuntime, FakeClock) against an in-test master.

No Docker and no waiting on wall time: real gRPC over 127.0.0.1 carries the
messages, while the agent's time (heartbeats, leases, fencing, reconnect delays,
relists) moves only when the test advances the fake clock. This checks the gRPC
side: registration with capacity and found pods, hello/heartbeats, change-only
status batches, newest assignments, reconnecting with re-registration, fencing,
and the message size the agent accepts.

Where a test measures the agent's timing against real messages (fencing), the fake
clock waits for them: `until(..., wait=...)` does not move it while `wait()` names a
message still on its way (`in_flight`). Otherwise a busy machine slows the real
messages and not the fake clock, which then runs ahead of them: an ack 100 ms late
looked like 0.7 s to the agent, and it fenced when nothing was wrong, or late.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
from collections.abc import AsyncIterator, Callable, Mapping
from typing import Any

from agent.fencing import FencePolicy
from agent.model import NodeInfo, Resources
from agent.outbox import StatusOutbox
from agent.runtime.fake_runtime import FakeEngine, FakeRuntime
from agent.session import Session
from agent.state.events import Event, Instruction, Reconnect, SessionEnded
from agent.state.lease import RECONNECT_INITIAL
from agent.worker import Worker
from kernel.clock import FakeClock
from tests.unit.test_agent_fake_master import FakeMaster, web_assignment

IMAGE = "pinnace/httpd:latest"
# Fake seconds per step, and the real pause that lets gRPC carry messages meanwhile.
STEP = 0.02
REAL_PAUSE = 0.003


async def run_for(clock: FakeClock, seconds: float, step: float = STEP) -> None:
    """Lets `seconds` of fake time pass, in small steps, with the network running."""
    end = clock.monotonic() + seconds
    while clock.monotonic() < end:
        clock.advance(step)
        await asyncio.sleep(REAL_PAUSE)


async def until(
    clock: FakeClock,
    predicate: Callable[[], Any],
    what: str,
    fake_timeout: float = 10.0,
    step: float = STEP,
    wait: Callable[[], str] | None = None,
) -> Any:
    """Advances fake time until `predicate()` is truthy; fails naming `what` after
    `fake_timeout` fake seconds (or 60 real ones). While `wait()` names something real
    still under way (a message on the wire), fake time stands still until it is done."""
    end, real_end = clock.monotonic() + fake_timeout, time.monotonic() + 60
    while not (value := predicate()):
        pending = wait() if wait is not None else ""
        if clock.monotonic() > end or time.monotonic() > real_end:
            waiting = f" (fake time stood waiting for {pending})" if pending else ""
            raise AssertionError(f"timed out waiting for {what}{waiting}")
        if not pending:
            clock.advance(step)
        await asyncio.sleep(REAL_PAUSE)
    return value


async def run_paced(
    clock: FakeClock, seconds: float, wait: Callable[[], str], step: float = STEP
) -> None:
    """run_for, with fake time standing still while `wait()` names something under way."""
    end = clock.monotonic() + seconds
    await until(
        clock, lambda: clock.monotonic() >= end, f"{seconds:g}s to pass", seconds + 1, step, wait
    )


def in_flight(master: FakeMaster, workers: Mapping[str, Worker]) -> str:
    """The heartbeat or ack still on its way between `master` (given the agents' clock)
    and the agents of `workers` (node name -> worker) in their current sessions; "" when
    none is. An agent's next decision (beat, ask its peers, fence) depends on them."""
    for node, worker in workers.items():
        lease = worker.state.lease
        if not lease.registered or lease.restarting:
            continue
        if lease.sequence > master.received.get(node, 0):
            return f"heartbeat {lease.sequence} of {node} to the master"
        if master.acked_at.get(node, float("-inf")) > lease.last_heard:
            return f"the master's heartbeat ack to {node}"
    return ""


async def real_until(predicate: Callable[[], Any], what: str, timeout: float = 30.0) -> Any:
    """Waits for `predicate()` in real time, fake time standing still; fails naming `what`."""
    end = time.monotonic() + timeout
    while not (value := predicate()):
        if time.monotonic() > end:
            raise AssertionError(f"timed out after {timeout:g}s (real) waiting for {what}")
        await asyncio.sleep(REAL_PAUSE)
    return value


@contextlib.asynccontextmanager
async def running_agent(
    clock: FakeClock,
    address: str,
    engine: FakeEngine,
    node: str = "n1",
    fence: FencePolicy | None = None,
    jitter: Callable[[], float] | None = None,
    notices: tuple[tuple[str, str], ...] = (),
) -> AsyncIterator[Worker]:
    """The agent's worker and session running; `notices`: (reason, message) the session is
    told to send once connected (Session.notify)."""
    outbox = StatusOutbox()
    worker = Worker(
        FakeRuntime(node, engine),
        "127.0.0.1",
        clock,
        outbox.update,
        0.2,
        fence=fence,
        validate=True,
    )
    info = NodeInfo(node, "127.0.0.1", Resources(2000, 2**30), Resources(1900, 2**29))
    session = Session(address, info, worker, outbox, clock, jitter or random.random)
    for reason, message in notices:
        session.notify(reason, message)
    tasks = [asyncio.create_task(worker.run()), asyncio.create_task(session.run())]
    try:
        yield worker
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


def new_engine(clock: FakeClock) -> FakeEngine:
    engine = FakeEngine(clock=clock.now)
    engine.present_images.add(IMAGE)
    return engine


def test_registers_heartbeats_runs_assignments_and_reports_changes_only() -> None:
    async def scenario() -> None:
        clock = FakeClock()
        master = FakeMaster(heartbeat=0.1)
        address = await master.start()
        engine = new_engine(clock)
        try:
            async with running_agent(clock, address, engine):
                await until(clock, lambda: master.connected("n1"), "session")
                master.assign("n1", web_assignment("a", IMAGE), web_assignment("b", IMAGE))
                a = await until(
                    clock,
                    lambda: (s := master.status("n1", "a")) and s.phase == "Running" and s,
                    "pod a Running",
                )
                await until(clock, lambda: len(master.heartbeats) >= 3, "heartbeats")
                reports_before = len(master.reports)
                await run_for(clock, 0.5)  # quiet period: nothing changed, nothing sent
                reports_after = len(master.reports)
        finally:
            await master.stop()

        (registration,) = master.registrations
        assert registration.node.name == "n1"
        assert registration.node.allocatable.cpu_millis == 1900
        assert master.hellos[0].session_id == "s1"
        assert [seq for _, seq in master.heartbeats[:3]] == [1, 2, 3]
        assert a.ready and a.host_ip == "127.0.0.1"
        assert a.port_map["80/TCP"] >= 32768
        assert reports_after == reports_before

    asyncio.run(scenario())


def test_heartbeats_follow_the_interval_the_master_gave_in_fake_time() -> None:
    async def scenario() -> None:
        clock = FakeClock()
        master = FakeMaster(heartbeat=1.0)
        address = await master.start()
        try:
            async with running_agent(clock, address, new_engine(clock)):
                await until(clock, lambda: master.connected("n1"), "session")
                start = len(master.heartbeats)
                await run_for(clock, 5.0)
                await asyncio.sleep(0.05)  # let the last one arrive
                sent = len(master.heartbeats) - start
        finally:
            await master.stop()

        assert 4 <= sent <= 6

    asyncio.run(scenario())


def test_a_shorter_plan_is_beaten_by_at_once_and_said_in_the_heartbeats() -> None:
    """Registered on 10 s beats; the first ack gives plan 2, 1 s beats: the next beat is
    due 1 s after the last, not 10 s, and says plan 2 (the master judges by the shorter
    lease only from then on). Before, an agent never beat more often than its
    registration's interval."""

    async def scenario() -> None:
        clock = FakeClock()
        master = FakeMaster(heartbeat=10.0, lease=30.0)
        master.next_plan = (2, 1.0, 5.0)
        address = await master.start()
        try:
            async with running_agent(clock, address, new_engine(clock)):
                await until(clock, lambda: master.heartbeats, "the first heartbeat", 15.0)
                first = clock.monotonic()
                await until(clock, lambda: len(master.heartbeats) >= 3, "two more beats", 3.0)
                took = clock.monotonic() - first
        finally:
            await master.stop()

        assert took <= 2.5
        assert master.heartbeat_plans[:3] == [1, 2, 2]

    asyncio.run(scenario())


def test_a_shorter_plan_offered_between_beats_is_confirmed_at_once() -> None:
    """The master offers a shrink on the session stream between beats (an ack of the last
    beat carrying the plan, master/controllers/shrink_offers.py), not only with the ack of
    a beat: the agent confirms it with a heartbeat at once, not at its next 10 s beat."""

    async def scenario() -> None:
        clock = FakeClock()
        master = FakeMaster(heartbeat=10.0, lease=30.0)
        address = await master.start()
        try:
            async with running_agent(clock, address, new_engine(clock)):
                await until(clock, lambda: master.heartbeats, "the first heartbeat", 15.0)
                await run_for(clock, 2.0)  # its ack read; the next beat due 8 s on
                offered = clock.monotonic()
                master.offer_plan("n1", 2, 1.0, 5.0)
                # At once: on the offer's arrival, with no time of the agent's passing (fake
                # time stands still; before, it took the agent's next beat, 8 s on).
                await real_until(lambda: len(master.heartbeats) >= 2, "a confirmation", 15.0)
                took = clock.monotonic() - offered
        finally:
            await master.stop()

        assert took == 0.0
        assert master.heartbeat_plans[:2] == [1, 2]

    asyncio.run(scenario())


def test_reconnects_and_reregisters_with_the_pods_it_runs() -> None:
    async def scenario() -> None:
        clock = FakeClock()
        master = FakeMaster()
        address = await master.start()
        engine = new_engine(clock)
        async with running_agent(clock, address, engine):
            await until(clock, lambda: master.connected("n1"), "session")
            master.assign("n1", web_assignment("a", IMAGE, epoch=4))
            await until(
                clock,
                lambda: (s := master.status("n1", "a")) and s.phase == "Running",
                "Running",
            )
            await master.stop()
            replacement = FakeMaster()
            replacement.assignments = dict(master.assignments)
            await run_for(clock, 0.3)  # the agent now sees connection refused
            await replacement.start(address)
            try:
                registration = await until(
                    clock,
                    lambda: replacement.registrations and replacement.registrations[0],
                    "re-registration",
                )
                await until(clock, lambda: replacement.connected("n1"), "new session")
            finally:
                await replacement.stop()

        assert [(p.pod_name, p.epoch, p.phase) for p in registration.pods] == [("a", 4, "Running")]
        assert len(engine.containers) == 1  # kept running across the reconnect

    asyncio.run(scenario())


def test_fences_when_the_master_hangs_but_not_when_it_is_down() -> None:
    async def scenario() -> None:
        clock = FakeClock()
        master = FakeMaster(heartbeat=0.1, clock=clock)
        address = await master.start()
        engine = new_engine(clock)
        fence = FencePolicy(fence_after=0.6)
        try:
            async with running_agent(clock, address, engine, fence=fence) as worker:
                # Fake time waits for every heartbeat and ack on the wire: the agent
                # hears the master exactly as often as it would on an idle machine.
                acks = lambda: in_flight(master, {"n1": worker})  # noqa: E731
                await until(clock, lambda: master.connected("n1"), "session", wait=acks)
                master.assign("n1", web_assignment("a", IMAGE))
                await until(clock, lambda: engine.containers, "container", wait=acks)
                assert not worker.fenced

                master.hung.set()
                hung_at = clock.monotonic()
                await until(clock, lambda: worker.fenced, "fence", wait=acks)
                fenced_after = clock.monotonic() - hung_at
                await until(clock, lambda: not engine.containers, "pods stopped")
                await run_for(clock, 0.5)
                assert worker.fenced and not engine.containers
        finally:
            await master.stop()
        # The last ack came at most one heartbeat before the hang; fenced 0.6 s after it.
        assert 0.5 <= fenced_after <= 0.9

        # Master process down (connection refused): pods keep running.
        down = new_engine(clock)
        survivor = FakeMaster(clock=clock)
        address = await survivor.start()
        try:
            # No jitter: the first reconnect comes RECONNECT_INITIAL x 0.5 after the loss.
            async with running_agent(
                clock, address, down, node="n2", fence=fence, jitter=lambda: 0.0
            ) as worker:
                acks = lambda: in_flight(survivor, {"n2": worker})  # noqa: E731
                await until(clock, lambda: survivor.connected("n2"), "session", wait=acks)
                survivor.assign("n2", web_assignment("b", IMAGE))
                await until(clock, lambda: down.containers, "container", wait=acks)
                lease = worker.state.lease
                await survivor.stop()
                # The agent finds out in real time (the stream ends, then its next attempt
                # is refused): fake time waits for each, so that what the agent decides
                # after is decided knowing the master is down.
                await real_until(lambda: not lease.registered, "the session to end")
                clock.advance(RECONNECT_INITIAL * 0.5)  # the reconnect delay
                await real_until(lambda: lease.last_error_refused, "connection refused")
                await run_for(clock, 1.5)
                assert not worker.fenced
                assert len(down.containers) == 1
        finally:
            await survivor.stop()

    asyncio.run(scenario())


def test_an_assignment_set_larger_than_grpcs_default_4_mib_reaches_the_agent() -> None:
    # The master may legally send up to kernel.limits.MAX_MASTER_MESSAGE_BYTES in one set
    # (say 25 replicas of a 200 KB template on one node): the agent must accept it.
    async def scenario() -> None:
        clock = FakeClock()
        master = FakeMaster()
        address = await master.start()
        try:
            async with running_agent(clock, address, new_engine(clock)):
                await until(clock, lambda: master.connected("n1"), "session")
                big = {f"K{i}": "x" * 200_000 for i in range(25)}  # ~5 MB
                master.assign("n1", web_assignment("a", IMAGE, env=big))
                await until(
                    clock,
                    lambda: (s := master.status("n1", "a")) and s.phase == "Running",
                    "the 5 MB pod Running",
                )
        finally:
            await master.stop()

    asyncio.run(scenario())


def test_an_agent_stopping_says_goodbye_before_its_session_ends() -> None:
    # Issue 16 item 12: on SIGTERM (agent/main.py calls goodbye) the master learns the
    # agent will be back, so it gives the node a grace instead of replacing its pods.
    async def scenario() -> None:
        clock = FakeClock()
        master = FakeMaster()
        address = await master.start()
        outbox = StatusOutbox()
        worker = Worker(FakeRuntime("n1", new_engine(clock)), "127.0.0.1", clock, outbox.update)
        info = NodeInfo("n1", "127.0.0.1", Resources(2000, 2**30), Resources(1900, 2**29))
        session = Session(address, info, worker, outbox, clock)
        assert not await session.goodbye("stopping")  # no session yet: nothing to tell
        tasks = [asyncio.create_task(worker.run()), asyncio.create_task(session.run())]
        try:
            await until(clock, lambda: master.connected("n1"), "session")
            assert await session.goodbye("the agent is stopping (SIGTERM) and will be back")
            await until(clock, lambda: master.goodbyes, "the goodbye at the master")
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            await master.stop()
        ((node, goodbye),) = master.goodbyes
        assert node == "n1" and "will be back" in goodbye.reason

    asyncio.run(scenario())


def test_a_crashed_container_running_again_is_reported_without_waiting_for_a_tick() -> None:
    """The restart's report goes when the outbox is updated (after a quiet spell), not at
    the sender's next FLUSH_INTERVAL tick: here fake time stands still meanwhile, so a
    sender that waits for a tick never sends it."""

    async def scenario() -> None:
        clock = FakeClock()
        master = FakeMaster(heartbeat=0.1)
        address = await master.start()
        engine = new_engine(clock)
        try:
            async with running_agent(clock, address, engine):
                await until(clock, lambda: master.connected("n1"), "session")
                master.assign("n1", web_assignment("a", IMAGE))
                await until(
                    clock,
                    lambda: (s := master.status("n1", "a")) and s.phase == "Running",
                    "pod a Running",
                )
                await run_for(clock, 1.0)  # a quiet spell
                (cid,) = [c.id for c in engine.containers.values() if c.alive]
                engine.crash(cid, exit_code=3)

                def restarted() -> bool:
                    s = master.status("n1", "a")
                    return s is not None and [(c.state, c.restart_count) for c in s.containers] == [
                        ("running", 1)
                    ]

                end = time.monotonic() + 10
                while not restarted():  # real time only: the fake clock stands still
                    assert time.monotonic() < end, master.status("n1", "a")
                    await asyncio.sleep(REAL_PAUSE)
        finally:
            await master.stop()

    asyncio.run(scenario())


def test_a_busy_masters_retry_after_is_honoured_over_the_wire() -> None:
    """RegisterNode refused RESOURCE_EXHAUSTED with `retry-after: 3.00` in the trailers (as
    the master's admission refuses): the agent comes back after 3 s x (0.5 + jitter), not
    after its own 0.2 s backoff."""

    async def scenario() -> tuple[list[float], list[tuple[float, ...]], list[float]]:
        clock = FakeClock()
        master = FakeMaster()
        master.busy, master.retry_after = 2, 3.0
        address = await master.start()
        seen: list[float] = []
        # What the agent made of each refusal: the hint it read off the wire, and how long
        # it chose to wait. (The master's view of the gap is that wait plus two trips of a
        # real gRPC call, during which the test's fake time runs on: a loaded machine made
        # it 3.48 s. So the master's view only bounds the wait from below.)
        waits: list[tuple[float, ...]] = []
        # The agent's clock when it chose each wait: it sleeps from there, in the same step.
        chosen_at: list[float] = []
        try:
            async with running_agent(clock, address, new_engine(clock), jitter=lambda: 0.5) as w:
                handle = w.handle

                def recorded(*events: Event) -> list[Instruction]:
                    out = handle(*events)
                    for event in events:
                        if isinstance(event, SessionEnded):
                            after = [i.after for i in out if isinstance(i, Reconnect)]
                            waits.append((event.retry_after, *after))
                            chosen_at.append(clock.monotonic())
                    return out

                w.handle = recorded  # type: ignore[method-assign]
                while len(seen) < 3:
                    attempts = master.refused + len(master.registrations)
                    await until(
                        clock,
                        lambda a=attempts: master.refused + len(master.registrations) > a,  # type: ignore[misc]
                        "a registration attempt",
                    )
                    seen.append(clock.monotonic())
        finally:
            await master.stop()
        return seen, waits, chosen_at

    (_, second, third), waits, chosen_at = asyncio.run(scenario())
    # Jitter 0.5: exactly the hint, after each of the two refusals.
    assert waits[:2] == [(3.0, 3.0), (3.0, 3.0)], waits
    # And the wait is kept: the next attempt reaches the master no sooner than the wait's
    # end on the agent's clock (seen once it has arrived, so at that end or after it).
    assert second >= chosen_at[0] + 3.0, (chosen_at, second)
    assert third >= chosen_at[1] + 3.0, (chosen_at, third)


def test_asked_to_resend_the_agent_sends_its_whole_outbox_and_its_proxy_problems() -> None:
    """A master that reloaded its memory lost the reports it had not stored; the agent
    says a report again only when it changes, so on request it sends all of them."""

    async def scenario() -> None:
        clock = FakeClock()
        master = FakeMaster(heartbeat=0.1)
        address = await master.start()
        engine = new_engine(clock)
        try:
            async with running_agent(clock, address, engine):
                await until(clock, lambda: master.connected("n1"), "session")
                master.assign("n1", web_assignment("a", IMAGE), web_assignment("b", IMAGE))
                both = ("a", "b")
                await until(
                    clock,
                    lambda: all(
                        (s := master.status("n1", pod)) and s.phase == "Running" for pod in both
                    ),
                    "pods a and b Running",
                )
                await until(clock, lambda: master.proxy_problems, "proxy problems")
                await run_for(clock, 0.5)  # quiet: nothing changed, nothing more sent
                batches, reports = master.batches, len(master.reports)
                problems = len(master.proxy_problems)
                master.ask_resend("n1")
                await until(clock, lambda: master.batches > batches, "the resent batch")
                await until(
                    clock, lambda: len(master.proxy_problems) > problems, "proxy problems again"
                )
                await run_for(clock, 0.5)
                resent = master.reports[reports:]
                batches_after = master.batches
        finally:
            await master.stop()

        assert sorted((p.pod_name, p.phase) for _, p in resent) == [
            ("a", "Running"),
            ("b", "Running"),
        ]
        assert batches_after == batches + 1  # one batch, and nothing after it
        assert len(master.proxy_problems) == problems + 1

    asyncio.run(scenario())


def test_notices_go_again_marked_again_when_the_master_asks_and_on_a_new_session() -> None:
    """A notice's event is stored some time after the master gets it: a reload meanwhile, or
    a leader killed, loses it, and the agent says it only once. Sent again (marked `again`,
    so a master that stored it does not count it twice) on a resend request and on every
    new session, for as long as agent/notices.py keeps it."""

    async def scenario() -> tuple[list[Any], list[Any], list[Any]]:
        clock = FakeClock()
        master = FakeMaster(heartbeat=0.1)
        address = await master.start()
        notice = ("ClusterDNSUnavailable", "port 53 is taken")
        try:
            async with running_agent(clock, address, new_engine(clock), notices=(notice,)):
                await until(clock, lambda: master.notices, "the notice")
                await run_for(clock, 0.5)
                first = [(n.reason, n.message, n.again) for _, n in master.notices]
                master.ask_resend("n1")
                await until(clock, lambda: len(master.notices) > 1, "the notice again")
                await run_for(clock, 0.5)
                asked = [(n.reason, n.message, n.again) for _, n in master.notices[1:]]
                await master.stop()
                replacement = FakeMaster(heartbeat=0.1)
                await run_for(clock, 0.3)  # the agent now sees connection refused
                await replacement.start(address)
                try:
                    await until(clock, lambda: replacement.notices, "the notice on a new session")
                    await run_for(clock, 0.5)
                    renewed = [(n.reason, n.message, n.again) for _, n in replacement.notices]
                finally:
                    await replacement.stop()
        finally:
            await master.stop()
        return first, asked, renewed

    first, asked, renewed = asyncio.run(scenario())

    assert first == [("ClusterDNSUnavailable", "port 53 is taken", False)]
    assert asked == [("ClusterDNSUnavailable", "port 53 is taken", True)]
    assert renewed == [("ClusterDNSUnavailable", "port 53 is taken", True)]


def test_the_agent_applies_numbered_changes_and_asks_for_the_whole_set_when_one_is_lost() -> None:
    async def scenario() -> None:
        clock = FakeClock()
        master = FakeMaster(heartbeat=0.1)
        address = await master.start()
        engine = new_engine(clock)

        def phase(pod: str) -> str:
            report = master.status("n1", pod)
            return "" if report is None else "removed" if report.removed else report.phase

        try:
            async with running_agent(clock, address, engine):
                await until(clock, lambda: master.connected("n1"), "session")
                master.assign(
                    "n1", web_assignment("a", IMAGE), web_assignment("b", IMAGE), sequence=1
                )
                await until(clock, lambda: phase("b") == "Running", "pod b Running")
                master.send_changes("n1", 2, [web_assignment("c", IMAGE)], ["a"])
                await until(clock, lambda: phase("c") == "Running", "pod c Running")
                await until(clock, lambda: phase("a") == "removed", "pod a removed")
                # Change 3 never comes: 4 applies nothing, the whole set is asked for once.
                master.send_changes("n1", 4, [web_assignment("d", IMAGE)], ["b"])
                master.send_changes("n1", 5, [], ["c"])
                await until(clock, lambda: master.resyncs, "the request for the whole set")
                await run_for(clock, 0.5)
                held = (phase("b"), phase("c"), phase("d"))
                master.assignment_sequence = 5  # acks now name the last change sent
                await run_for(clock, 0.5)
                asked = len(master.resyncs)
                master.assignment_sequence = 6  # as a master's acks do, from the set on
                master.assign("n1", web_assignment("d", IMAGE), sequence=6)
                await until(clock, lambda: phase("b") == "removed", "pod b removed")
                await until(clock, lambda: phase("d") == "Running", "pod d Running")
                await run_for(clock, 0.5)
        finally:
            await master.stop()

        assert master.hellos[0].takes_assignment_changes
        assert held == ("Running", "Running", "")
        assert asked == 1  # acks naming numbers it already asked past ask nothing more
        ((node, resync),) = master.resyncs
        assert node == "n1" and resync.sequence == 2
        assert phase("c") == "removed"

    asyncio.run(scenario())
