"""The agent's Session + Worker in-process (FakeRuntime) against an in-test fake master.

No Docker needed: this checks the gRPC side: registration with capacity and found
pods, hello/heartbeats, change-only status batches, newest assignments, reconnecting
with re-registration, and fencing.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

from agent.fencing import FencePolicy
from agent.model import NodeInfo, Resources
from agent.outbox import StatusOutbox
from agent.runtime.fake_runtime import FakeEngine, FakeRuntime
from agent.session import Session
from agent.worker import Worker
from kernel.clock import SystemClock
from tests.integration.test_agent_fake_master import FakeMaster, eventually, web_assignment

IMAGE = "pinnace/httpd:latest"


@contextlib.asynccontextmanager
async def running_agent(
    address: str, engine: FakeEngine, node: str = "n1", fence: FencePolicy | None = None
) -> AsyncIterator[Worker]:
    clock = SystemClock()
    outbox = StatusOutbox()
    worker = Worker(FakeRuntime(node, engine), "127.0.0.1", clock, outbox.update, 0.2)
    info = NodeInfo(node, "127.0.0.1", Resources(2000, 2**30), Resources(1900, 2**29))
    session = Session(address, info, worker, outbox, clock, fence)
    tasks = [asyncio.create_task(worker.run()), asyncio.create_task(session.run())]
    try:
        yield worker
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


def new_engine() -> FakeEngine:
    engine = FakeEngine()
    engine.present_images.add(IMAGE)
    return engine


def test_registers_heartbeats_runs_assignments_and_reports_changes_only() -> None:
    async def scenario() -> None:
        master = FakeMaster(heartbeat=0.1)
        address = await master.start()
        engine = new_engine()
        try:
            async with running_agent(address, engine):
                await eventually(lambda: master.connected("n1"), what="session")
                master.assign("n1", web_assignment("a", IMAGE), web_assignment("b", IMAGE))
                a = await eventually(
                    lambda: (s := master.status("n1", "a")) and s.phase == "Running" and s,
                    what="pod a Running",
                )
                await eventually(lambda: len(master.heartbeats) >= 3, what="heartbeats")
                reports_before = len(master.reports)
                await asyncio.sleep(0.5)  # quiet period: nothing changed, nothing sent
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


def test_reconnects_and_reregisters_with_the_pods_it_runs() -> None:
    async def scenario() -> None:
        master = FakeMaster()
        address = await master.start()
        engine = new_engine()
        async with running_agent(address, engine):
            await eventually(lambda: master.connected("n1"), what="session")
            master.assign("n1", web_assignment("a", IMAGE, epoch=4))
            await eventually(
                lambda: (s := master.status("n1", "a")) and s.phase == "Running", what="Running"
            )
            await master.stop()
            replacement = FakeMaster()
            replacement.assignments = dict(master.assignments)
            await asyncio.sleep(0.3)  # the agent now sees connection refused
            await replacement.start(address)
            try:
                registration = await eventually(
                    lambda: replacement.registrations and replacement.registrations[0],
                    timeout=10,
                    what="re-registration",
                )
                await eventually(lambda: replacement.connected("n1"), what="new session")
            finally:
                await replacement.stop()

        assert [(p.pod_name, p.epoch, p.phase) for p in registration.pods] == [("a", 4, "Running")]
        assert len(engine.containers) == 1  # kept running across the reconnect

    asyncio.run(scenario())


def test_fences_when_the_master_hangs_but_not_when_it_is_down() -> None:
    async def scenario() -> None:
        master = FakeMaster(heartbeat=0.1)
        address = await master.start()
        engine = new_engine()
        fence = FencePolicy(fence_after=0.6)
        try:
            async with running_agent(address, engine, fence=fence) as worker:
                await eventually(lambda: master.connected("n1"), what="session")
                master.assign("n1", web_assignment("a", IMAGE))
                await eventually(lambda: engine.containers, what="container")

                master.hung.set()
                await eventually(lambda: worker.fenced, timeout=5, what="fence")
                await eventually(lambda: not engine.containers, what="pods stopped")
                await asyncio.sleep(0.5)
                assert worker.fenced and not engine.containers
        finally:
            await master.stop()

        # Master process down (connection refused): pods keep running.
        down = new_engine()
        survivor = FakeMaster()
        address = await survivor.start()
        try:
            async with running_agent(address, down, node="n2", fence=fence) as worker:
                await eventually(lambda: survivor.connected("n2"), what="session")
                survivor.assign("n2", web_assignment("b", IMAGE))
                await eventually(lambda: down.containers, what="container")
                await survivor.stop()
                await asyncio.sleep(1.5)
                assert not worker.fenced
                assert len(down.containers) == 1
        finally:
            await survivor.stop()

    asyncio.run(scenario())


def test_an_assignment_set_larger_than_grpcs_default_4_mib_reaches_the_agent() -> None:
    # The master may legally send up to kernel.limits.MAX_MASTER_MESSAGE_BYTES in one set
    # (say 25 replicas of a 200 KB template on one node): the agent must accept it.
    async def scenario() -> None:
        master = FakeMaster()
        address = await master.start()
        engine = new_engine()
        try:
            async with running_agent(address, engine):
                await eventually(lambda: master.connected("n1"), what="session")
                big = {f"K{i}": "x" * 200_000 for i in range(25)}  # ~5 MB
                master.assign("n1", web_assignment("a", IMAGE, env=big))
                await eventually(
                    lambda: (s := master.status("n1", "a")) and s.phase == "Running",
                    what="the 5 MB pod Running",
                )
        finally:
            await master.stop()

    asyncio.run(scenario())
