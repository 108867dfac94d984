"""A crashed container replaced into its pod's standby: what is on the way to running again
and to the master's knowing it (agent/worker.py _restart, Runtime.replace's `ran` and
`before_remove`). The fake runtime holds one engine call at a time to see what the worker
does meanwhile; no clock is involved (the fake engine answers at once otherwise)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

from agent.logs import PreviousLogs
from agent.model import PodStatusReport
from agent.runtime.fake_runtime import FakeEngine, FakeRuntime
from agent.runtime.port import ContainerConfig, ContainerInfo, LogOptions
from agent.worker import Worker
from kernel.clock import FakeClock
from tests.support import until_async
from tests.unit.test_agent_worker import IMAGE, Harness, web_pod


class HeldRuntime(FakeRuntime):
    """A fake runtime whose creates and removals wait for their gate (open by default), and
    which records the engine calls made for the old container (`touched`), and which of
    them came while a create was under way (`beside`)."""

    def __init__(self, node: str, engine: FakeEngine) -> None:
        super().__init__(node, engine)
        self.creates, self.removals = asyncio.Event(), asyncio.Event()
        self.creates.set()
        self.removals.set()
        self.watching = ""
        self.touched: list[str] = []
        self.beside: list[str] = []
        self._creating = 0

    async def create_and_start(
        self, config: ContainerConfig, image_ready: object = None
    ) -> ContainerInfo:
        self._creating += 1
        try:
            await self.creates.wait()
            return await super().create_and_start(config)
        finally:
            self._creating -= 1

    def _touch(self, container_id: str, call: str) -> None:
        if container_id == self.watching:
            self.touched.append(call)
            if self._creating:
                self.beside.append(call)

    async def remove(self, container_id: str) -> None:
        await self.removals.wait()
        await super().remove(container_id)

    async def inspect(self, container_id: str) -> ContainerInfo | None:
        self._touch(container_id, "inspect")
        return await super().inspect(container_id)

    async def logs(self, container_id: str, options: LogOptions) -> AsyncIterator[bytes]:
        self._touch(container_id, "logs")
        async for chunk in super().logs(container_id, options):
            yield chunk


class StandbyHarness(Harness):
    """Pod a running with its standby made, the worker following events, logs kept."""

    runtime: HeldRuntime

    def __init__(self) -> None:
        self.clock = FakeClock()
        self.engine = FakeEngine(clock=self.clock.now)
        self.engine.present_images.add(IMAGE)
        self.runtime = HeldRuntime("n1", self.engine)
        self.reports: dict[str, PodStatusReport] = {}
        self.worker = Worker(
            self.runtime, "127.0.0.1", self.clock, self._publish, previous=PreviousLogs()
        )

    async def crash_into_standby(
        self, hold: asyncio.Event
    ) -> tuple[ContainerInfo, asyncio.Task[None]]:
        """Pod a's container crashes once its standby is made; `hold` (creates or removals)
        is closed from then on."""
        self.assign(web_pod("a"))
        await self.step()
        hold.clear()
        (first,) = self.containers()
        self.engine.standbys["a"] = "standby-a"  # the restart replaces it into the standby
        self.engine.write_log(first.id, b"boom\n")
        self.runtime.watching = first.id
        watcher = asyncio.create_task(self.worker.watch_events())
        await until_async(lambda: self.engine.watched("n1"), "the worker follows the events")
        self.engine.crash(first.id, exit_code=137)
        return first, watcher

    def reported_running(self, old: str) -> bool:
        report = self.reports.get("a")
        if report is None or not report.containers:
            return False
        status = report.containers[0]
        return status.state == "running" and status.container_id not in ("", old)


async def _stop(h: StandbyHarness, watcher: asyncio.Task[None]) -> None:
    h.runtime.creates.set()
    h.runtime.removals.set()
    await h.worker.settle()
    watcher.cancel()
    await asyncio.gather(watcher, return_exceptions=True)


def test_a_replacement_is_reported_running_before_the_old_container_is_removed() -> None:
    """On the code before, the worker reported the replacement only once Runtime.replace
    returned, after the dead run's log was read and the old container removed (0.05 s
    median, 0.16 s worst at load 9): the master learned of the pod running that much later."""

    async def scenario() -> None:
        h = StandbyHarness()
        first, watcher = await h.crash_into_standby(h.runtime.removals)

        await until_async(lambda: h.reported_running(first.id), "the replacement reported", 5)

        assert first.id in h.engine.containers  # its removal still waits
        assert h.reports["a"].containers[0].restart_count == 1
        await _stop(h, watcher)
        assert first.id not in h.engine.containers

    asyncio.run(scenario())


def test_the_dead_runs_log_is_read_only_once_its_replacement_runs() -> None:
    """On the code before, keeping the dead run's log (an inspect and a log read of the old
    container) began beside the replacement's create and start, whose engine calls it
    competed with on a busy engine."""

    async def scenario() -> None:
        h = StandbyHarness()
        first, watcher = await h.crash_into_standby(h.runtime.creates)
        await until_async(lambda: h.worker.starting > 0, "the replacement's start under way", 3)
        for _ in range(50):
            await asyncio.sleep(0)  # the worker's other tasks get every chance to run

        assert h.runtime.beside == []
        h.runtime.creates.set()
        await until_async(lambda: first.id not in h.engine.containers, "the old one removed", 3)
        assert h.runtime.beside == [] and "logs" in h.runtime.touched  # read, after the start
        await _stop(h, watcher)

    asyncio.run(scenario())
