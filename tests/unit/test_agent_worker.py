"""The Worker over a FakeRuntime: stepped by hand (iterate + settle), clock injected."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import replace

from agent.model import (
    Assignments,
    ContainerPort,
    ContainerSpec,
    EnvVar,
    PodAssignment,
    PodSpec,
    PodStatusReport,
    Resources,
)
from agent.runtime.fake_runtime import FakeEngine, FakeRuntime
from agent.runtime.port import ContainerConfig, ContainerInfo, RuntimeFailure
from agent.worker import Worker
from kernel.clock import FakeClock

IMAGE = "pinnace/httpd:latest"


def web_pod(name: str, image: str = IMAGE, *, stop: bool = False, epoch: int = 1) -> PodAssignment:
    spec = ContainerSpec(
        "web",
        image,
        env=(EnvVar("A", "1"),),
        ports=(ContainerPort(80),),
        limits=Resources(500, 64 * 2**20),
    )
    return PodAssignment(name, epoch, PodSpec((spec,)), labels={"app": "web"}, stop=stop)


class Harness:
    def __init__(self, node: str = "n1", engine: FakeEngine | None = None) -> None:
        self.clock = FakeClock()
        self.engine = engine or FakeEngine(clock=self.clock.now)
        self.engine.present_images.add(IMAGE)
        self.runtime = FakeRuntime(node, self.engine)
        self.reports: dict[str, PodStatusReport] = {}
        self.worker = Worker(self.runtime, "127.0.0.1", self.clock, self._publish, validate=True)

    def _publish(self, reports: list[PodStatusReport]) -> None:
        self.reports = {r.pod_name: r for r in reports}

    async def step(self, times: int = 1) -> None:
        for _ in range(times):
            await self.worker.iterate()
            await self.worker.settle()
        await self.worker.iterate()

    def assign(self, *pods: PodAssignment, revision: int = 1) -> None:
        self.worker.set_assignments(Assignments(revision, pods))

    def containers(self) -> list[ContainerInfo]:
        return list(self.engine.containers.values())


def test_assigned_pods_start_with_labels_ports_and_limits_then_report_running() -> None:
    async def scenario() -> None:
        h = Harness()
        h.assign(web_pod("a"), web_pod("b"))

        await h.step()

        by_pod = {c.pod: c for c in h.containers()}
        assert set(by_pod) == {"a", "b"}
        a = by_pod["a"]
        assert a.name == "pinnace-n1-a-web"
        assert a.labels["pinnace.node"] == "n1"
        assert a.labels["pinnace.label.app"] == "web"
        assert a.labels["pinnace.epoch"] == "1"
        report = h.reports["a"]
        assert (report.phase, report.ready) == ("Running", True)
        assert report.port_map == {"80/TCP": a.ports["80/TCP"]}

    asyncio.run(scenario())


def test_container_config_carries_env_limits_and_publishes_on_the_advertise_address() -> None:
    seen: list[ContainerConfig] = []

    async def scenario() -> None:
        h = Harness()
        original = h.runtime.create_and_start

        async def spy(
            config: ContainerConfig, image_ready: Awaitable[object] | None = None
        ) -> ContainerInfo:
            seen.append(config)
            return await original(config, image_ready)

        h.runtime.create_and_start = spy  # type: ignore[method-assign]
        h.assign(web_pod("a"))
        await h.step()

    asyncio.run(scenario())

    (config,) = seen
    assert config.env == (("A", "1"),)
    assert (config.nano_cpus, config.mem_limit) == (500_000_000, 64 * 2**20)
    assert config.host_ip == "127.0.0.1"
    assert [(p.container_port, p.host_port) for p in config.ports] == [(80, 0)]


def test_nothing_is_touched_before_the_first_assignment_and_found_pods_are_reported() -> None:
    async def scenario() -> None:
        h = Harness()
        h.assign(web_pod("a", epoch=7))
        await h.step()
        before = {c.id for c in h.containers()}
        fresh = Harness(engine=h.engine)  # a restarted agent on the same node

        await fresh.step()

        assert {c.id for c in h.containers()} == before
        assert fresh.reports["a"].epoch == 7
        assert fresh.reports["a"].phase == "Running"
        fresh.assign(web_pod("a", epoch=7))
        await fresh.step()
        assert {c.id for c in h.containers()} == before  # adopted, not replaced

    asyncio.run(scenario())


def test_crashed_container_is_restarted_and_counted() -> None:
    async def scenario() -> None:
        h = Harness()
        h.assign(web_pod("a"))
        await h.step()
        (first,) = h.containers()

        h.engine.crash(first.id, exit_code=137)
        await h.step()

        # The first restart is immediate: the same container is started again, and its
        # name (labels cannot change) carries the restart in the count.
        (second,) = h.containers()
        assert second.id == first.id and second.alive and second.restarted_at
        assert second.labels["pinnace.restart-count"] == "0" and second.restart_count == 1
        assert h.reports["a"].containers[0].restart_count == 1

        # Its second exit is a new exit (same id, another run): it backs off as before.
        h.engine.crash(second.id, exit_code=2)
        await h.step()
        waiting = h.reports["a"].containers[0]
        assert (waiting.state, waiting.reason) == ("waiting", "CrashLoopBackOff")
        assert "exit code 2" in waiting.message
        assert [c.id for c in h.containers()] == [first.id]

        # After the back-off a new container replaces it, its label carrying the count.
        h.clock.advance(1.0)
        await h.step()
        (third,) = h.containers()
        assert third.id != first.id and third.labels["pinnace.restart-count"] == "2"
        assert h.reports["a"].containers[0].restart_count == 2
        assert h.reports["a"].phase == "Running"
        assert h.engine.restarts_in_place == [first.id]

    asyncio.run(scenario())


def test_a_container_that_will_not_start_again_is_replaced_at_once() -> None:
    async def scenario() -> None:
        h = Harness()
        h.assign(web_pod("a"))
        await h.step()
        (first,) = h.containers()
        h.engine.restart_failures[first.id] = "driver failed programming external connectivity"

        h.engine.crash(first.id, exit_code=1)
        await h.step()

        (second,) = h.containers()
        assert second.id != first.id and second.alive
        assert second.restart_count == 1 and h.reports["a"].containers[0].restart_count == 1
        assert h.engine.restarts_in_place == []

    asyncio.run(scenario())


def test_unpullable_image_backs_off_while_the_other_pod_runs() -> None:
    async def scenario() -> None:
        h = Harness()
        h.assign(web_pod("good"), web_pod("bad", image="nope/missing:1"))

        await h.step()

        assert h.reports["good"].phase == "Running"
        bad = h.reports["bad"]
        assert (bad.phase, bad.containers[0].reason) == ("Pending", "ErrImagePull")
        assert "nope/missing:1" in bad.containers[0].message
        h.clock.advance(1.0)
        await h.step()
        assert h.reports["bad"].containers[0].reason == "ImagePullBackOff"
        assert h.engine.pulls == ["nope/missing:1", "nope/missing:1"]

        h.engine.pullable_images.add("nope/missing:1")
        h.clock.advance(2.0)
        await h.step()
        assert h.reports["bad"].phase == "Running"

    asyncio.run(scenario())


def test_pull_always_without_a_registry_runs_the_present_image_and_says_so() -> None:
    async def scenario() -> None:
        h = Harness()
        pod = web_pod("a")
        spec = replace(pod.spec.containers[0], image_pull_policy="Always")
        h.assign(replace(pod, spec=replace(pod.spec, containers=(spec,))))

        await h.step()

        (c,) = h.reports["a"].containers
        assert h.engine.pulls == [IMAGE]
        assert (h.reports["a"].phase, c.state) == ("Running", "running")
        assert c.image_note.startswith(f"could not pull {IMAGE} (pull access denied")
        assert c.image_note.endswith("using the image already on the node")

    asyncio.run(scenario())


def test_a_pods_create_is_asked_while_its_pull_is_under_way_and_runs_after_it() -> None:
    # issue 15: the pull (Always for a :latest tag) no longer stands before the create.
    asked: list[str] = []

    async def scenario() -> None:
        h = Harness()
        pull_may_end = asyncio.Event()
        pull, create = h.runtime.ensure_image, h.runtime.create_and_start

        async def held_pull(image: str, pull_policy: str = "IfNotPresent") -> str:
            await pull_may_end.wait()
            return await pull(image, pull_policy)

        async def spy(
            config: ContainerConfig, image_ready: Awaitable[object] | None = None
        ) -> ContainerInfo:
            asked.append(config.name)
            return await create(config, image_ready)

        h.runtime.ensure_image = held_pull  # type: ignore[method-assign]
        h.runtime.create_and_start = spy  # type: ignore[method-assign]
        h.assign(web_pod("a"))
        await h.worker.iterate()
        for _ in range(10):
            await asyncio.sleep(0)

        assert asked == ["pinnace-n1-a-web"]
        assert h.containers() == []
        pull_may_end.set()
        await h.worker.settle()
        await h.worker.iterate()
        assert h.reports["a"].phase == "Running"

    asyncio.run(scenario())


def test_stop_order_removes_containers_and_reports_removed() -> None:
    async def scenario() -> None:
        h = Harness()
        h.assign(web_pod("a"), web_pod("b"))
        await h.step()

        h.assign(web_pod("a", stop=True), web_pod("b"), revision=2)
        await h.step()

        assert {c.pod for c in h.containers()} == {"b"}
        assert h.reports["a"].removed is True

    asyncio.run(scenario())


def test_pod_dropped_from_the_set_is_removed_and_reported_removed() -> None:
    async def scenario() -> None:
        h = Harness()
        h.assign(web_pod("a"), web_pod("b"))
        await h.step()

        h.assign(web_pod("b"), revision=2)
        await h.step()

        assert {c.pod for c in h.containers()} == {"b"}
        assert (h.reports["a"].removed, h.reports["a"].epoch) == (True, 1)

    asyncio.run(scenario())


def test_older_revisions_are_ignored() -> None:
    async def scenario() -> None:
        h = Harness()
        h.assign(web_pod("a"), revision=5)

        h.assign(revision=4)
        await h.step()

        assert {c.pod for c in h.containers()} == {"a"}

    asyncio.run(scenario())


def test_another_nodes_containers_on_the_same_engine_are_never_touched() -> None:
    async def scenario() -> None:
        one = Harness("n1")
        two = Harness("n2", engine=one.engine)
        one.assign(web_pod("a"))
        await one.step()

        two.assign()  # n2 has nothing: it must not remove n1's pod
        await two.step()

        assert [(c.pod, c.labels["pinnace.node"]) for c in one.containers()] == [("a", "n1")]
        assert two.reports == {}

    asyncio.run(scenario())


def test_fencing_stops_every_pod_and_fresh_assignments_lift_it() -> None:
    async def scenario() -> None:
        h = Harness()
        h.assign(web_pod("a"), web_pod("b"))
        await h.step()

        h.worker.fence("lost the master")
        await h.step()
        assert h.containers() == []

        h.assign(web_pod("a"), revision=1)
        await h.step()
        assert [c.pod for c in h.containers()] == ["a"]

    asyncio.run(scenario())


def test_pods_start_in_parallel() -> None:
    in_flight = 0
    peak = 0

    async def scenario() -> None:
        nonlocal in_flight, peak
        h = Harness()
        gate = asyncio.Event()
        original = h.runtime.create_and_start

        async def slow(
            config: ContainerConfig, image_ready: Awaitable[object] | None = None
        ) -> ContainerInfo:
            nonlocal in_flight, peak
            in_flight += 1
            peak = max(peak, in_flight)
            await gate.wait()
            in_flight -= 1
            return await original(config, image_ready)

        h.runtime.create_and_start = slow  # type: ignore[method-assign]
        h.assign(*(web_pod(f"p{i}") for i in range(30)))
        await h.worker.iterate()
        for _ in range(10):
            await asyncio.sleep(0)
        gate.set()
        await h.worker.settle()

        assert len(h.containers()) == 30

    asyncio.run(scenario())
    assert peak == 30


def test_assignments_arriving_right_after_a_fence_do_not_skip_its_teardown() -> None:
    async def scenario() -> None:
        h = Harness()
        h.assign(web_pod("a"))
        await h.step()
        (before,) = h.containers()

        h.worker.fence("frozen")
        h.assign(web_pod("a"), revision=1)  # a quick reconnect, before any iteration
        await h.step(2)

        (after,) = h.containers()
        assert after.id != before.id
        assert not h.worker.fenced

    asyncio.run(scenario())


async def _until(check: Callable[[], object], what: str) -> None:
    """Lets the loop run until `check()` holds; the fake engine answers at once, so a
    bounded number of turns is enough (no clock involved)."""
    for _ in range(1000):
        if check():
            return
        await asyncio.sleep(0)
    raise AssertionError(f"never happened: {what}")


class ListCounter:
    """Counts the worker's lists of every container."""

    def __init__(self, h: Harness) -> None:
        self.lists = 0
        self._list = h.runtime.list_containers
        h.runtime.list_containers = self._counted  # type: ignore[method-assign]

    async def _counted(self) -> list[ContainerInfo]:
        self.lists += 1
        return await self._list()


async def _watching(h: Harness) -> asyncio.Task[None]:
    """The worker following the engine's events (a task: `_stop` ends it)."""
    watcher = asyncio.create_task(h.worker.watch_events())
    await _until(lambda: h.engine.watched("n1"), "the worker follows the events")
    return watcher


async def _stop(watcher: asyncio.Task[None]) -> None:
    watcher.cancel()
    await asyncio.gather(watcher, return_exceptions=True)


async def _relist_agrees(h: Harness, restarted: str) -> None:
    """After one restart of pod a's container `restarted` from its die event, the relist
    agrees: counted once, started once, pod b untouched."""
    await h.step()
    assert h.reports["a"].containers[0].restart_count == 1
    assert h.reports["b"].containers[0].restart_count == 0
    assert h.engine.restarts_in_place == [restarted]


def test_a_die_event_restarts_its_container_without_listing_every_container() -> None:
    async def scenario() -> None:
        h = Harness()
        h.assign(web_pod("a"), web_pod("b"))
        await h.step()
        first = next(c for c in h.containers() if c.pod == "a")
        counter = ListCounter(h)
        watcher = await _watching(h)

        h.engine.crash(first.id, exit_code=137)
        await _until(lambda: h.engine.restarts_in_place, "the container started again")
        await h.worker.settle()

        assert counter.lists == 0
        again = next(c for c in h.containers() if c.pod == "a")
        assert again.id == first.id and again.alive and again.restart_count == 1
        await _stop(watcher)
        await _relist_agrees(h, first.id)

    asyncio.run(scenario())


def test_a_crash_right_after_its_standby_was_made_is_replaced_though_no_listing_showed_it() -> None:
    """The runtime made the pod's standby after the worker's last listing (which gave the
    container none): the die event's restart asks the runtime (standby_of), so the dead
    container is replaced (into the standby, on a real engine), not started again in place.
    On the code before, the worker decided from the listing alone: started again in place."""

    async def scenario() -> None:
        h = Harness()
        h.assign(web_pod("a"))
        await h.step()
        (first,) = h.containers()
        assert not h.worker.state.pods.observed[0].standby_id
        h.engine.standbys["a"] = "standby-a"  # made now: no listing has shown it
        counter = ListCounter(h)
        watcher = await _watching(h)

        h.engine.crash(first.id, exit_code=137)
        await _until(lambda: any(c.alive for c in h.containers()), "the pod running again")
        await h.worker.settle()

        assert counter.lists == 0
        (again,) = [c for c in h.containers() if c.alive]
        assert again.id != first.id and again.restart_count == 1
        assert h.engine.restarts_in_place == []
        await _stop(watcher)

    asyncio.run(scenario())


def test_a_missed_die_event_is_caught_by_the_relist() -> None:
    async def scenario() -> None:
        h = Harness()
        h.assign(web_pod("a"))
        await h.step()
        (first,) = h.containers()

        h.engine.crash(first.id, exit_code=1)  # no one follows the events: missed
        await h.worker.settle()
        assert h.engine.restarts_in_place == []
        await h.step()

        assert h.engine.restarts_in_place == [first.id]
        assert h.reports["a"].containers[0].restart_count == 1

    asyncio.run(scenario())


class InspectCounter:
    """Counts the worker's inspects of a container."""

    def __init__(self, h: Harness) -> None:
        self.inspects = 0
        self._inspect = h.runtime.inspect
        h.runtime.inspect = self._counted  # type: ignore[method-assign]

    async def _counted(self, container_id: str) -> ContainerInfo | None:
        self.inspects += 1
        return await self._inspect(container_id)


class History(Harness):
    """A harness over an engine whose die events say what Docker's do (the exit code, the
    name; an oom event before an OOM kill's die), keeping every report published."""

    def __init__(self) -> None:
        clock = FakeClock()
        super().__init__(engine=FakeEngine(clock=clock.now, die_details=True))
        self.clock = clock
        self.published: list[PodStatusReport] = []

    def _publish(self, reports: list[PodStatusReport]) -> None:
        super()._publish(reports)
        self.published += reports


def test_a_die_event_that_says_enough_restarts_without_an_inspect() -> None:
    async def scenario() -> None:
        h = History()
        h.assign(web_pod("a"), web_pod("b"))
        await h.step()
        first = next(c for c in h.containers() if c.pod == "a")
        lists, inspects = ListCounter(h), InspectCounter(h)
        watcher = await _watching(h)

        h.engine.crash(first.id, exit_code=137)
        await _until(lambda: h.engine.restarts_in_place, "the container started again")
        await h.worker.settle()

        assert (inspects.inspects, lists.lists) == (0, 0)
        terminated = [
            c for r in h.published if r.pod_name == "a" for c in r.containers if c.exit_code
        ]
        assert [(c.state, c.reason, c.exit_code, c.restart_count) for c in terminated] == [
            ("terminated", "Error", 137, 1)
        ]
        assert (h.reports["a"].containers[0].state, h.reports["a"].phase) == ("running", "Running")
        await _stop(watcher)
        await _relist_agrees(h, first.id)

    asyncio.run(scenario())


def test_an_oom_kill_decided_from_its_events_is_reported_as_one() -> None:
    async def scenario() -> None:
        h = History()
        h.assign(web_pod("a"))
        await h.step()
        (first,) = h.containers()
        inspects = InspectCounter(h)
        watcher = await _watching(h)

        h.clock.advance(3)
        h.engine.crash(first.id, exit_code=137, oom_killed=True)
        await _until(lambda: h.engine.restarts_in_place, "the container started again")
        await h.worker.settle()

        assert inspects.inspects == 0
        reasons = [c.reason for r in h.published for c in r.containers if c.exit_code]
        assert reasons == ["OOMKilled"]
        await _stop(watcher)

    asyncio.run(scenario())


def test_a_second_crash_within_its_back_off_is_inspected_and_waits() -> None:
    async def scenario() -> None:
        h = History()
        h.assign(web_pod("a"))
        await h.step()
        (first,) = h.containers()
        inspects = InspectCounter(h)
        watcher = await _watching(h)
        h.engine.crash(first.id, exit_code=1)
        await _until(lambda: h.engine.restarts_in_place, "the container started again")
        await h.worker.settle()
        await h.step()  # a list after the restart: the pod's task is done
        assert inspects.inspects == 0

        h.clock.advance(0.2)
        h.engine.crash(first.id, exit_code=2)
        await _until(lambda: inspects.inspects, "the died container inspected")
        await h.worker.settle()

        status = h.reports["a"].containers[0]
        assert (status.reason, status.restart_count) == ("CrashLoopBackOff", 1)
        assert "exit code 2" in status.message
        assert h.engine.restarts_in_place == [first.id]
        await _stop(watcher)

    asyncio.run(scenario())


def test_a_die_whose_container_cannot_be_inspected_is_left_to_a_relist() -> None:
    async def scenario() -> None:
        h = Harness()
        h.assign(web_pod("a"))
        await h.step()
        (first,) = h.containers()

        async def unreachable(container_id: str) -> ContainerInfo | None:
            raise RuntimeFailure("cannot reach Docker")

        h.runtime.inspect = unreachable  # type: ignore[method-assign]
        watcher = await _watching(h)
        h.engine.crash(first.id, exit_code=1)
        for _ in range(20):
            await asyncio.sleep(0)
        await h.worker.settle()
        assert h.engine.restarts_in_place == []
        await _stop(watcher)

        await h.step()

        assert h.engine.restarts_in_place == [first.id]

    asyncio.run(scenario())


async def _turns(n: int = 200) -> None:
    """Lets the loop run `n` turns (the fake engine answers at once)."""
    for _ in range(n):
        await asyncio.sleep(0)


def test_a_start_event_of_a_pod_whose_task_runs_wakes_no_pass_the_task_s_end_does() -> None:
    async def scenario() -> None:
        h = Harness()
        counter = ListCounter(h)
        let_return = asyncio.Event()
        original = h.runtime.create_and_start

        async def held(
            config: ContainerConfig, image_ready: Awaitable[object] | None = None
        ) -> ContainerInfo:
            info = await original(config, image_ready)  # the engine's start event is out
            await let_return.wait()
            return info

        h.runtime.create_and_start = held  # type: ignore[method-assign]
        loop = asyncio.create_task(h.worker.run())
        await _until(lambda: h.engine.watched("n1") and counter.lists == 1, "the first list")
        h.assign(web_pod("a"))  # started at once, and one relist for the new set
        await _until(lambda: h.containers() and counter.lists == 2, "the start and the relist")

        await _turns()  # the start event reaches the worker while the pod's task runs
        during = counter.lists
        let_return.set()
        await _until(lambda: counter.lists == 3, "the pass after the task")
        await _until(lambda: "a" in h.reports and h.reports["a"].phase == "Running", "Running")
        loop.cancel()
        await asyncio.gather(loop, return_exceptions=True)

        assert during == 2  # no list for the start the pod's own task made

    asyncio.run(scenario())


def test_a_container_started_by_someone_else_wakes_a_pass() -> None:
    async def scenario() -> None:
        h = Harness()
        never = web_pod("a")
        h.assign(replace(never, spec=replace(never.spec, restart_policy="Never")))
        await h.step()
        (first,) = h.containers()
        h.engine.crash(first.id, exit_code=0)
        await h.step()
        assert h.reports["a"].phase == "Succeeded"
        counter = ListCounter(h)
        loop = asyncio.create_task(h.worker.run())
        await _until(lambda: h.engine.watched("n1") and h.clock.sleepers, "the loop waits")
        await _turns()
        before = counter.lists

        h.engine.start_by_hand(first.id)  # `docker start` by hand: no task of the agent's

        await _until(lambda: counter.lists == before + 1, "a pass for the start event")
        loop.cancel()
        await asyncio.gather(loop, return_exceptions=True)
        assert h.reports["a"].containers[0].state == "running"

    asyncio.run(scenario())


def test_a_crash_while_its_standby_is_being_made_waits_for_it_and_is_replaced() -> None:
    """The pod's standby holder was created and its start had not returned when the
    container crashed: the restart waits for that start (Runtime.standby_soon) and replaces
    the container into it. On the code before, standby_of said none yet and the container
    was started again in place, which waits for the engine's network cleanup (~1 s)."""

    async def scenario() -> None:
        h = Harness()
        h.assign(web_pod("a"))
        await h.step()
        (first,) = h.containers()
        made = h.engine.standbys_making["a"] = asyncio.Event()
        watcher = await _watching(h)

        h.engine.crash(first.id, exit_code=137)
        await _turns()
        assert h.worker.starting == 1  # the restart waits for the standby
        assert h.engine.restarts_in_place == []
        assert not any(c.alive for c in h.containers())
        h.engine.standbys["a"] = "standby-a"
        made.set()
        await _until(lambda: any(c.alive for c in h.containers()), "the pod running again")
        await h.worker.settle()

        (again,) = [c for c in h.containers() if c.alive]
        assert again.id != first.id and again.restart_count == 1
        assert h.engine.restarts_in_place == []
        await _stop(watcher)

    asyncio.run(scenario())
