"""Container logs: the agent's streamer over a fake runtime, and the master's relay."""

from __future__ import annotations

import asyncio

import pytest

from agent.logs import LogOrder, LogStreamer, pick_container
from agent.runtime.fake_runtime import FakeEngine, FakeRuntime
from agent.runtime.port import LABEL_CONTAINER, LABEL_POD, ContainerConfig, LogOptions
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
