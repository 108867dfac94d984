"""Probes in the Worker loop over a FakeRuntime: a scripted checker, a FakeClock, no sleeps."""

from __future__ import annotations

import asyncio

from agent.model import (
    Assignments,
    ContainerPort,
    ContainerSpec,
    PodAssignment,
    PodSpec,
    PodStatusReport,
    Probe,
)
from agent.probes import ProbeResult, ProbeTarget
from agent.runtime.fake_runtime import FakeEngine, FakeRuntime
from agent.runtime.port import ContainerInfo
from agent.worker import Worker
from kernel.clock import FakeClock

IMAGE = "pinnace/httpd:latest"
READINESS = Probe(kind="httpGet", port="80", path="/healthz", period_seconds=5)
LIVENESS = Probe(kind="tcpSocket", port="8081", period_seconds=5, failure_threshold=2)


class Checker:
    """Answers probes from a script (probe kind -> result, default pass); records every call."""

    def __init__(self) -> None:
        self.answers: dict[str, ProbeResult] = {}
        self.calls: list[ProbeTarget] = []

    async def __call__(self, target: ProbeTarget) -> ProbeResult:
        self.calls.append(target)
        return self.answers.get(target.key[2], ProbeResult(True))


class Harness:
    def __init__(self) -> None:
        self.clock = FakeClock()
        self.engine = FakeEngine(clock=self.clock.now)
        self.engine.present_images.add(IMAGE)
        self.runtime = FakeRuntime("n1", self.engine)
        self.check = Checker()
        self.reports: dict[str, PodStatusReport] = {}
        self.worker = Worker(
            self.runtime, "127.0.0.1", self.clock, self._publish, check=self.check, validate=True
        )

    def _publish(self, reports: list[PodStatusReport]) -> None:
        self.reports = {r.pod_name: r for r in reports}

    async def step(self) -> None:
        """Passes until the loop is quiet: act, probe, report what the probes said."""
        for _ in range(2):
            await self.worker.iterate()
            await self.worker.settle()
        await self.worker.iterate()

    def report(self, pod: str = "p") -> PodStatusReport:
        return self.reports[pod]

    def live(self) -> list[ContainerInfo]:
        return [c for c in self.engine.containers.values() if c.alive]


def assignment(spec: ContainerSpec) -> Assignments:
    pod = PodAssignment("p", 1, PodSpec((spec,), termination_grace_period_seconds=1))
    return Assignments(1, (pod,))


WEB = ContainerSpec(
    "web", IMAGE, ports=(ContainerPort(80),), readiness_probe=READINESS, liveness_probe=LIVENESS
)


def test_a_pod_becomes_ready_only_once_its_readiness_probe_passes() -> None:
    async def scenario() -> None:
        h = Harness()
        h.check.answers["readiness"] = ProbeResult(False, "HTTP probe failed with statuscode: 404")
        h.worker.set_assignments(assignment(WEB))

        await h.step()
        failing = h.report()
        h.check.answers["readiness"] = ProbeResult(True)
        h.clock.advance(READINESS.period_seconds)
        await h.step()
        passing = h.report()

        assert failing.phase == "Running"
        assert failing.ready is False
        assert failing.containers[0].message == (
            "Readiness probe failed: HTTP probe failed with statuscode: 404"
        )
        assert passing.ready is True
        # The probe went to the published host port of container port 80.
        (container,) = h.live()
        readiness_calls = [t for t in h.check.calls if t.key[2] == "readiness"]
        assert {(t.host, t.port) for t in readiness_calls} == {
            ("127.0.0.1", container.ports["80/TCP"])
        }
        # A port only the liveness probe uses is published too, so it can be probed.
        assert "8081/TCP" in container.ports
        assert "8081/TCP" not in passing.port_map

    asyncio.run(scenario())


def test_probes_run_once_per_period_not_once_per_pass() -> None:
    async def scenario() -> None:
        h = Harness()
        h.worker.set_assignments(assignment(WEB))
        await h.step()
        first = len(h.check.calls)

        for _ in range(3):
            await h.step()  # no time passes
        h.clock.advance(5)
        await h.step()

        assert first == 2  # one readiness, one liveness
        assert len(h.check.calls) == 4

    asyncio.run(scenario())


def test_a_failing_liveness_probe_restarts_the_container_and_counts_it() -> None:
    async def scenario() -> None:
        h = Harness()
        h.worker.set_assignments(assignment(WEB))
        await h.step()
        (first,) = h.live()
        h.check.answers["liveness"] = ProbeResult(False, "TCP probe failed: connection refused")

        h.clock.advance(5)
        await h.step()  # first failure: threshold is 2
        still = h.live()
        h.clock.advance(5)
        await h.step()  # second failure: stopped
        await h.step()  # restarted

        assert [c.id for c in still] == [first.id]
        (second,) = h.live()
        # Started again in place (the first restart is immediate), as a new run: its
        # liveness count starts again and its status does not carry the old failure.
        assert second.id == first.id and second.restarted_at
        assert second.restart_count == 1
        report = h.report()
        assert report.containers[0].restart_count == 1
        assert report.phase == "Running"
        assert (report.containers[0].state, report.containers[0].reason) == ("running", "")

    asyncio.run(scenario())


def test_a_pod_without_probes_is_ready_when_running_and_never_probed() -> None:
    async def scenario() -> None:
        h = Harness()
        h.worker.set_assignments(assignment(ContainerSpec("web", IMAGE)))

        await h.step()

        assert h.report().ready is True
        assert h.check.calls == []

    asyncio.run(scenario())


def test_a_restarted_agent_keeps_an_adopted_ready_pod_ready_until_its_probe_answers() -> None:
    async def scenario() -> None:
        h = Harness()
        h.worker.set_assignments(assignment(WEB))
        await h.step()
        assert h.report().ready
        published: list[bool] = []
        fresh = Worker(
            h.runtime,
            "127.0.0.1",
            h.clock,
            lambda reports: published.extend(r.ready for r in reports),
            check=h.check,
            validate=True,
        )

        await fresh.iterate()  # before assignments: adopted, ready as it runs
        fresh.set_assignments(assignment(WEB))
        await fresh.iterate()  # probes start; the verdict is not in yet
        await fresh.settle()
        await fresh.iterate()
        h.check.answers["readiness"] = ProbeResult(False, "HTTP probe failed with statuscode: 503")
        h.clock.advance(READINESS.period_seconds)
        for _ in range(3):  # one failure is not enough to fail an established pass
            await fresh.iterate()
            await fresh.settle()

        assert published[:3] == [True, True, True]
        assert published[-1] is True

    asyncio.run(scenario())
