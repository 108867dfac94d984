"""Container logs: the agent's streamer over a fake runtime, and the master's relay."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from agent.logs import LogOrder, LogStreamer, PreviousLogs, pick_container
from agent.model import Assignments, ContainerSpec, PodAssignment, PodSpec
from agent.runtime.fake_runtime import FakeEngine, FakeRuntime
from agent.runtime.port import LABEL_CONTAINER, LABEL_POD, ContainerConfig, LogOptions
from agent.worker import Worker
from kernel.clock import FakeClock
from master.api.logs import LogQuery, LogRelay, LogUnavailable
from protos import node_pb2

Chunk = tuple[str, bytes, bool, str]


async def _started(runtime: FakeRuntime, pod: str, container: str) -> str:
    runtime.engine.present_images.add("img")
    info = await runtime.create_and_start(
        ContainerConfig(
            name=f"{pod}-{container}",
            image="img",
            labels={LABEL_POD: pod, LABEL_CONTAINER: container, "pinnace.node": runtime.node},
        )
    )
    return info.id


async def _collect(streamer: LogStreamer, order: LogOrder) -> list[Chunk]:
    got: list[Chunk] = []
    done = asyncio.Event()

    def send(rid: str, data: bytes, end: bool, error: str) -> None:
        got.append((rid, data, end, error))
        if end:
            done.set()

    streamer.start(order, send)
    await asyncio.wait_for(done.wait(), 5)
    return got


def test_the_agent_streams_the_tail_of_the_pods_container_then_ends() -> None:
    async def run() -> None:
        runtime = FakeRuntime("n1", FakeEngine())
        cid = await _started(runtime, "web-1", "web")
        runtime.engine.write_log(cid, b"one\ntwo\nthree\n")
        got = await _collect(
            LogStreamer(runtime), LogOrder("r1", "web-1", "", LogOptions(tail_lines=2))
        )
        assert b"".join(c[1] for c in got) == b"two\nthree\n"
        assert got[-1] == ("r1", b"", True, "")

    asyncio.run(run())


def test_the_agent_says_why_when_there_is_no_such_container() -> None:
    async def run() -> None:
        runtime = FakeRuntime("n1", FakeEngine())
        await _started(runtime, "web-1", "web")
        got = await _collect(LogStreamer(runtime), LogOrder("r2", "web-1", "db", LogOptions()))
        assert got == [("r2", b"", True, "container db is not valid for pod web-1")]

    asyncio.run(run())


def test_pick_container_needs_a_name_when_the_pod_has_several() -> None:
    from agent.runtime.port import ContainerInfo

    a = ContainerInfo("1", "x", "img", "running", {LABEL_POD: "p", LABEL_CONTAINER: "a"})
    b = ContainerInfo("2", "y", "img", "running", {LABEL_POD: "p", LABEL_CONTAINER: "b"})
    assert "choose one of: [a, b]" in str(pick_container([a, b], "p", ""))
    assert pick_container([a, b], "p", "b") == b
    assert "no container on this node" in str(pick_container([a], "q", ""))


def test_the_relay_pairs_chunks_with_requests_and_cancels_an_abandoned_follow() -> None:
    async def run() -> None:
        relay = LogRelay()
        down: asyncio.Queue[node_pb2.MasterMessage] = asyncio.Queue()
        relay.attach("n1", down)
        stream = relay.stream("n1", LogQuery(pod="p", follow=True))
        first = asyncio.create_task(anext(stream))
        sent = await asyncio.wait_for(down.get(), 5)
        rid = sent.log_request.request_id
        assert (sent.log_request.pod_name, sent.log_request.follow) == ("p", True)
        relay.deliver(node_pb2.LogChunk(request_id="someone-else", data=b"no"))
        relay.deliver(node_pb2.LogChunk(request_id=rid, data=b"hello\n"))
        assert await asyncio.wait_for(first, 5) == b"hello\n"
        await stream.aclose()
        cancel = await asyncio.wait_for(down.get(), 5)
        assert cancel.log_cancel.request_id == rid

    asyncio.run(run())


def test_the_relay_refuses_a_node_without_a_session_and_ends_streams_when_it_goes() -> None:
    async def run() -> None:
        relay = LogRelay()
        with pytest.raises(LogUnavailable, match="no live session"):
            await anext(relay.stream("n1", LogQuery(pod="p")))
        down: asyncio.Queue[node_pb2.MasterMessage] = asyncio.Queue()
        relay.attach("n1", down)
        stream = relay.stream("n1", LogQuery(pod="p"))
        waiting = asyncio.create_task(anext(stream))
        await asyncio.wait_for(down.get(), 5)
        relay.detach("n1", down)
        with pytest.raises(LogUnavailable, match="session of node n1 ended"):
            await asyncio.wait_for(waiting, 5)

    asyncio.run(run())


# -- --previous: the log kept at a restart ---------------------------------------------


def _pod_a_on(runtime: FakeRuntime, clock: FakeClock) -> tuple[Worker, LogStreamer]:
    """A worker on `runtime` assigned pod "a" (one container "web" of image "img"), and a
    log streamer reading the logs it keeps for --previous."""
    runtime.engine.present_images.add("img")
    previous = PreviousLogs()
    worker = Worker(runtime, "127.0.0.1", clock, lambda _: None, previous=previous)
    worker.set_assignments(
        Assignments(1, (PodAssignment("a", 1, PodSpec((ContainerSpec("web", "img"),))),))
    )
    return worker, LogStreamer(runtime, previous)


def test_a_restart_keeps_the_dead_runs_log_for_previous_until_the_next_restart() -> None:
    async def run() -> None:
        clock = FakeClock()
        engine = FakeEngine(clock=clock.now)
        worker, streamer = _pod_a_on(FakeRuntime("n1", engine), clock)

        async def step() -> None:
            await worker.iterate()
            await worker.settle()
            await worker.iterate()

        await step()
        (first,) = engine.containers.values()
        order = LogOrder("r1", "a", "", LogOptions(), previous=True)
        never = await _collect(streamer, order)
        assert never[-1][3] == 'previous terminated container "web" in pod "a" not found'

        engine.write_log(first.id, b"one\ntwo\nboom\n")
        engine.crash(first.id, 1)
        await step()
        (second,) = engine.containers.values()
        # The first restart starts the same container again; its log shows the new run.
        assert (second.id, second.state, engine.restarts_in_place) == (
            first.id,
            "running",
            [first.id],
        )
        engine.write_log(second.id, b"fresh\n")
        got = await _collect(streamer, order)
        assert b"".join(c[1] for c in got) == b"one\ntwo\nboom\n" and got[-1][3] == ""
        tail = await _collect(streamer, replace_options(order, LogOptions(tail_lines=1)))
        assert b"".join(c[1] for c in tail) == b"boom\n"
        current = await _collect(streamer, LogOrder("r2", "a", "", LogOptions()))
        assert b"".join(c[1] for c in current) == b"fresh\n"

        engine.crash(second.id, 1)
        await step()  # backing off: the dead run stays, nothing new is kept yet
        clock.advance(60)
        await step()
        assert len(engine.containers) == 1 and second.id not in engine.containers
        again = await _collect(streamer, order)
        assert b"".join(c[1] for c in again) == b"fresh\n"

    asyncio.run(run())


def replace_options(order: LogOrder, options: LogOptions) -> LogOrder:
    return LogOrder(order.request_id, order.pod, order.container, options, previous=True)


def test_kept_tails_are_bounded_and_belong_to_one_pod_incarnation() -> None:
    from agent.logs import Kept, keep_tail, last_lines
    from agent.runtime.port import ContainerInfo

    assert keep_tail(b"a" * 10 + b"\nline\n", 8) == b"line\n"
    assert keep_tail(b"x" * 20, 8) == b"x" * 8
    assert last_lines(b"1\n2\n3\n", 2) == b"2\n3\n" and last_lines(b"1\n", 0) == b""
    kept = PreviousLogs(max_containers=2)
    for pod in ("a", "b", "c"):
        kept.keep(pod, "web", Kept(epoch=1, restart_count=0, data=pod.encode()))

    def info(pod: str, epoch: int, restarts: int) -> ContainerInfo:
        labels = {LABEL_POD: pod, LABEL_CONTAINER: "web", "pinnace.epoch": str(epoch),
                  "pinnace.restart-count": str(restarts)}  # fmt: skip
        return ContainerInfo("id", "n", "img", "running", labels)

    assert kept.find(info("a", 1, 1)) is None  # the oldest was dropped
    found = kept.find(info("c", 1, 1))
    assert found is not None and found.data == b"c"
    assert kept.find(info("c", 2, 1)) is None  # a new pod of that name: not its past
    assert kept.find(info("c", 1, 0)) is None  # not an earlier run


class _SlowLogs(FakeRuntime):
    """A runtime whose log reads wait for `gate`: the copy of a dead run's tail is still
    under way when the restarted container is already reported running."""

    def __init__(self, node: str, engine: FakeEngine) -> None:
        super().__init__(node, engine)
        self.gate = asyncio.Event()

    async def logs(self, container_id: str, options: LogOptions) -> AsyncIterator[bytes]:
        await self.gate.wait()
        async for chunk in super().logs(container_id, options):
            yield chunk


def test_previous_asked_while_the_dead_runs_tail_is_copied_waits_for_it() -> None:
    async def run() -> None:
        clock = FakeClock()
        engine = FakeEngine(clock=clock.now)
        runtime = _SlowLogs("n1", engine)
        runtime.gate.set()
        worker, streamer = _pod_a_on(runtime, clock)
        for _ in range(2):
            await worker.iterate()
            await worker.settle()
        (first,) = engine.containers.values()
        engine.write_log(first.id, b"one\nboom\n")
        runtime.gate.clear()
        engine.crash(first.id, 1)
        await worker.iterate()
        await worker.settle()
        await worker.iterate()
        await worker.settle()
        assert engine.restarts_in_place == [first.id]  # running again, its old tail not copied

        asked = asyncio.create_task(
            _collect(streamer, LogOrder("r1", "a", "", LogOptions(), previous=True))
        )
        while not asked.done() and not streamer._tasks:
            await asyncio.sleep(0)
        await asyncio.sleep(0)
        assert not asked.done()  # the answer waits for the copy
        runtime.gate.set()
        got = await asked
        assert b"".join(c[1] for c in got) == b"one\nboom\n" and got[-1][3] == ""

    asyncio.run(run())
