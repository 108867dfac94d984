"""Exec: the WebSocket channel framing, the master's relay decisions, the agent's runner."""

from __future__ import annotations

import asyncio
import json

import pytest

from agent.exec import MAX_PENDING_INPUT, ExecInput, ExecOrder, ExecRunner
from agent.runtime.fake_runtime import FakeEngine, FakeRuntime
from agent.runtime.port import LABEL_CONTAINER, LABEL_POD, ContainerConfig, ExecResult
from kernel.clock import FakeClock
from master.api.exec import (
    INPUT_WINDOW,
    MAX_BUFFERED,
    ExecRefused,
    ExecRelay,
    ExecUnavailable,
    Exited,
    Output,
    incoming,
    locate_exec,
)
from master.api.kube.channels import (
    V4,
    V5,
    CloseStdin,
    Resize,
    Stdin,
    choose_protocol,
    exec_params,
    exit_status,
    frame,
    parse_client_frame,
)
from master.model import Container, ObjectMeta, Pod, PodPhase, PodSpec, PodStatus
from master.state import ClusterState
from master.store.memory import MemoryStore
from protos import node_pb2

# -- channel framing ------------------------------------------------------------------


def test_v5_is_preferred_and_v4_is_the_fallback() -> None:
    assert choose_protocol("v5.channel.k8s.io, v4.channel.k8s.io") == V5
    assert choose_protocol("v4.channel.k8s.io,channel.k8s.io") == V4
    assert choose_protocol("base64.channel.k8s.io") is None
    assert choose_protocol("") is None


def test_client_frames_carry_stdin_resizes_and_v5s_close_of_stdin() -> None:
    assert frame(1, b"out") == b"\x01out"
    assert parse_client_frame(b"\x00hello", V5) == Stdin(b"hello")
    assert parse_client_frame(b"\x04" + b'{"Width":120,"Height":40}', V4) == Resize(120, 40)
    assert parse_client_frame(b"\xff\x00", V5) == CloseStdin()
    # v4 has no close message; an empty or a server-side channel means nothing.
    assert parse_client_frame(b"\xff\x00", V4) is None
    assert parse_client_frame(b"", V5) is None
    assert parse_client_frame(b"\x00", V5) is None
    assert parse_client_frame(b"\x01sneaky", V5) is None
    assert parse_client_frame(b"\x04not json", V5) is None
    assert parse_client_frame(b'\x04{"Width":0,"Height":3}', V5) is None


def test_the_error_channel_status_carries_the_exit_code_as_kubectl_reads_it() -> None:
    assert exit_status(0, "", ["true"]) == {"metadata": {}, "status": "Success"}
    failed = exit_status(3, "", ["sh", "-c", "exit 3"])
    assert failed["reason"] == "NonZeroExitCode"
    assert failed["details"]["causes"] == [{"reason": "ExitCode", "message": "3"}]
    assert "exit code 3" in failed["message"]
    broken = exit_status(0, "pod web has no running container", ["ls"])
    assert (broken["status"], broken["message"]) == ("Failure", "pod web has no running container")
    assert exit_status(-1, "", ["ls"])["reason"] == "InternalError"
    json.dumps(failed)  # what goes on the wire


def test_exec_query_parameters() -> None:
    params = exec_params({"stdin": "true", "stdout": "true", "tty": "1", "container": "c"}, ["sh"])
    assert (params.command, params.container, params.stdin, params.stdout) == (
        ["sh"], "c", True, True
    )  # fmt: skip
    assert (params.stderr, params.tty) == (False, True)
    with pytest.raises(ValueError, match="at least one command"):
        exec_params({"stdout": "true"}, [])
    with pytest.raises(ValueError, match="stdin, stdout, stderr"):
        exec_params({}, ["ls"])


# -- the master's relay ---------------------------------------------------------------


def _state(*pods: Pod) -> ClusterState:
    state = ClusterState(MemoryStore(), FakeClock())
    for p in pods:
        state.put(p)
    return state


def _pod(name: str, node: str = "n1", phase: PodPhase = PodPhase.RUNNING) -> Pod:
    return Pod(
        meta=ObjectMeta(name=name),
        spec=PodSpec(containers=(Container("web", "img"), Container("side", "img"))),
        node_name=node,
        status=PodStatus(phase=phase),
    )


def test_locate_picks_the_node_and_container_or_says_why_not() -> None:
    state = _state(_pod("web-1"), _pod("pending", node=""), _pod("done", phase=PodPhase.SUCCEEDED))
    assert locate_exec(state, "web-1", "") == ("n1", "web")
    assert locate_exec(state, "web-1", "side") == ("n1", "side")
    with pytest.raises(ExecRefused) as missing:
        locate_exec(state, "nope", "")
    assert missing.value.code == "not_found"
    with pytest.raises(ExecRefused, match="container other is not valid"):
        locate_exec(state, "web-1", "other")
    with pytest.raises(ExecRefused, match="not scheduled"):
        locate_exec(state, "pending", "")
    with pytest.raises(ExecRefused, match="completed pod"):
        locate_exec(state, "done", "")


def test_outputs_pass_until_the_buffer_is_full_then_the_exec_is_cut_off() -> None:
    out = node_pb2.ExecOutput(request_id="r", stream=2, data=b"x")
    assert incoming(out, 0) == Output(2, b"x")
    assert incoming(replace_stream(out, 7), 0) == Output(1, b"x")
    assert incoming(out, MAX_BUFFERED) == Exited(-1, "the exec's reader could not keep up; cut off")
    end = node_pb2.ExecOutput(request_id="r", end=True, exit_code=4)
    assert incoming(end, MAX_BUFFERED) == Exited(4, "")


def replace_stream(out: node_pb2.ExecOutput, stream: int) -> node_pb2.ExecOutput:
    copy = node_pb2.ExecOutput()
    copy.CopyFrom(out)
    copy.stream = stream
    return copy


def test_the_relay_sends_start_input_and_cancel_down_and_ends_on_session_loss() -> None:
    async def run() -> None:
        relay = ExecRelay()
        with pytest.raises(ExecUnavailable, match="no live session"):
            relay.open("n1", "web-1", "web", ["sh"], True, False)
        down: asyncio.Queue[node_pb2.MasterMessage] = asyncio.Queue()
        relay.attach("n1", down)
        channel = relay.open("n1", "web-1", "web", ["sh"], True, True, 80, 24)
        start = down.get_nowait().exec_start
        assert (start.pod_name, list(start.command), start.tty, start.width) == (
            "web-1", ["sh"], True, 80
        )  # fmt: skip
        await channel.stdin(b"ls\n")
        channel.resize(100, 30)
        channel.close_stdin()
        sent = [down.get_nowait().exec_input for _ in range(3)]
        assert [(i.data, i.width, i.close_stdin) for i in sent] == [
            (b"ls\n", 0, False), (b"", 100, False), (b"", 0, True)
        ]  # fmt: skip
        assert {i.request_id for i in sent} == {start.request_id}
        relay.deliver(node_pb2.ExecOutput(request_id=start.request_id, stream=1, data=b"a"))
        relay.deliver(node_pb2.ExecOutput(request_id="someone-else", stream=1, data=b"b"))
        assert await channel.next() == Output(1, b"a")
        relay.detach("n1", asyncio.Queue())  # a stale session: nothing happens
        relay.detach("n1", down)
        assert await channel.next() == Exited(-1, "the session of node n1 ended")
        channel.close()  # ended: no cancel is sent
        assert down.empty()

        relay.attach("n1", down)
        other = relay.open("n1", "web-1", "web", ["sh"], False, False)
        down.get_nowait()
        other.close()  # the client left first: the agent is told to stop
        assert down.get_nowait().exec_input.cancel

    asyncio.run(run())


# -- the agent's runner ---------------------------------------------------------------


async def _container(runtime: FakeRuntime, pod: str) -> str:
    runtime.engine.present_images.add("img")
    info = await runtime.create_and_start(
        ContainerConfig(
            name=f"{pod}-web",
            image="img",
            labels={LABEL_POD: pod, LABEL_CONTAINER: "web", "pinnace.node": runtime.node},
        )
    )
    return info.id


Sent = tuple[str, int, bytes, bool, int, str]


def test_the_agent_runs_the_command_feeds_stdin_and_reports_the_exit_code() -> None:
    async def run() -> None:
        runtime = FakeRuntime("n1", FakeEngine())
        await _container(runtime, "web-1")
        runtime.engine.exec_results[("cat",)] = ExecResult(7, "hi\n")
        got: list[Sent] = []
        acks: list[int] = []
        done = asyncio.Event()

        def send(
            rid: str, stream: int, data: bytes, end: bool, code: int, error: str, written: int
        ) -> None:
            if written:
                acks.append(written)
                return
            got.append((rid, stream, data, end, code, error))
            if end:
                done.set()

        runner = ExecRunner(runtime)
        runner.start(ExecOrder("r1", "web-1", "", ("cat",), stdin=True), send)
        runner.input(ExecInput("r1", data=b"typed\n"))
        runner.input(ExecInput("r1", close_stdin=True))
        runner.input(ExecInput("unknown", data=b"dropped"))
        await asyncio.wait_for(done.wait(), 5)
        assert b"".join(g[2] for g in got) == b"hi\ntyped\n"
        assert got[-1] == ("r1", 0, b"", True, 7, "")
        assert acks == [1]  # one stdin piece written: the master may send more

    asyncio.run(run())


def test_the_agent_says_why_a_command_cannot_run_and_a_cancel_stops_it() -> None:
    async def run() -> None:
        runtime = FakeRuntime("n1", FakeEngine())
        cid = await _container(runtime, "web-1")
        got: list[Sent] = []

        def send(
            rid: str, stream: int, data: bytes, end: bool, code: int, error: str, written: int
        ) -> None:
            got.append((rid, stream, data, end, code, error))

        runner = ExecRunner(runtime)
        runner.start(ExecOrder("r1", "web-1", "", ()), send)
        runner.start(ExecOrder("r2", "other", "", ("ls",)), send)
        runner.start(ExecOrder("r3", "web-1", "", ("sh",), stdin=True), send)
        for _ in range(20):
            await asyncio.sleep(0)
        runner.input(ExecInput("r3", cancel=True))
        for _ in range(20):
            await asyncio.sleep(0)
        ends = {g[0]: g[5] for g in got if g[3]}
        assert ends["r1"] == "you must specify at least one command"
        assert "has no running container" in ends["r2"]
        assert "r3" not in ends  # cancelled: the master stopped listening
        runtime.engine.crash(cid, 1)
        runner.start(ExecOrder("r4", "web-1", "", ("ls",)), send)
        for _ in range(20):
            await asyncio.sleep(0)
        assert "has no running container" in {g[0]: g[5] for g in got if g[3]}["r4"]

    asyncio.run(run())


def test_stdin_beyond_the_agents_buffer_ends_the_exec_with_a_reason() -> None:
    async def run() -> None:
        runtime = FakeRuntime("n1", FakeEngine())
        await _container(runtime, "web-1")
        ends: dict[str, str] = {}

        def send(
            rid: str, stream: int, data: bytes, end: bool, code: int, error: str, written: int
        ) -> None:
            if end:
                ends[rid] = error

        runner = ExecRunner(runtime)
        runner.start(ExecOrder("r1", "web-1", "", ("cat",), stdin=True), send)
        for _ in range(MAX_PENDING_INPUT + 1):  # before the runner had a turn to read any
            runner.input(ExecInput("r1", data=b"x"))
        for _ in range(20):
            await asyncio.sleep(0)
        assert ends == {"r1": "the command's stdin overran the agent's buffer; cut off"}

    asyncio.run(run())


def test_the_master_keeps_at_most_a_window_of_stdin_in_flight() -> None:
    async def run() -> None:
        relay = ExecRelay()
        down: asyncio.Queue[node_pb2.MasterMessage] = asyncio.Queue()
        relay.attach("n1", down)
        channel = relay.open("n1", "web-1", "web", ["cat"], True, False)
        request_id = down.get_nowait().exec_start.request_id
        for _ in range(INPUT_WINDOW):
            await channel.stdin(b"x")
        blocked = asyncio.create_task(channel.stdin(b"y"))
        for _ in range(5):
            await asyncio.sleep(0)
        assert not blocked.done() and down.qsize() == INPUT_WINDOW
        relay.deliver(node_pb2.ExecOutput(request_id=request_id, input_done=1))
        await asyncio.wait_for(blocked, 1)
        assert down.qsize() == INPUT_WINDOW + 1
        assert channel.events.empty()  # an acknowledgement is no output

    asyncio.run(run())


# -- exec and attach over a plain SPDY upgrade (master/api/kube/exec_spdy.py, upgrade.py) --


def test_spdy_exec_streams_sizes_and_the_chosen_protocol() -> None:
    from master.api.kube.channels import ERROR, RESIZE, STDERR, STDIN, STDOUT, ExecParams
    from master.api.kube.exec_spdy import PROTOCOLS, expected_streams, terminal_sizes
    from master.api.kube.upgrade import choose

    # kubectl 1.32 offers v5 first; over SPDY the kubelet (and pinnace) speak v4.
    offered = ["v5.channel.k8s.io", "v4.channel.k8s.io", "v3.channel.k8s.io", "channel.k8s.io"]
    assert choose(offered, PROTOCOLS) == "v4.channel.k8s.io"
    assert choose(["v2.channel.k8s.io, channel.k8s.io"], PROTOCOLS) is None
    plain = ExecParams(command=["ls"], stdout=True, stderr=True)
    assert expected_streams(plain) == {ERROR, STDOUT, STDERR}
    terminal = ExecParams(command=["sh"], stdin=True, stdout=True, stderr=True, tty=True)
    assert expected_streams(terminal) == {ERROR, STDIN, STDOUT, RESIZE}  # a TTY has no stderr
    # The resize stream: JSON sizes back to back, split anywhere by frames.
    sizes, rest = terminal_sizes(b'{"Width":111,"Height":33}{"Width":120,"Hei')
    assert (sizes, rest) == ([(111, 33)], b'{"Width":120,"Hei')
    sizes, rest = terminal_sizes(rest + b'ght":40}\n{"Width":0,"Height":1}')
    assert (sizes, rest) == ([(120, 40)], b"")
