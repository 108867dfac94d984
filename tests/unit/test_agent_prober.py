"""run_probe(): HTTP and TCP against small servers on 127.0.0.1, exec through a FakeRuntime."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import replace

from agent.model import HTTPHeader, Probe
from agent.prober import http_request, parse_status_line, run_probe
from agent.probes import ProbeResult, ProbeTarget
from agent.runtime.fake_runtime import FakeEngine, FakeRuntime
from agent.runtime.port import ContainerConfig, ExecResult

HTTP = Probe(kind="httpGet", port="80", path="/healthz")
TCP = Probe(kind="tcpSocket", port="80")
Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


@asynccontextmanager
async def server(handler: Handler) -> AsyncIterator[int]:
    srv = await asyncio.start_server(handler, "127.0.0.1", 0)
    try:
        yield srv.sockets[0].getsockname()[1]
    finally:
        srv.close()
        await srv.wait_closed()


def replying(status: bytes, requests: list[bytes] | None = None) -> Handler:
    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        request = await reader.readuntil(b"\r\n\r\n")
        if requests is not None:
            requests.append(request)
        writer.write(status + b"\r\nContent-Length: 0\r\n\r\n")
        await writer.drain()
        writer.close()

    return handle


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
    return port


def target(probe: Probe, port: int = 0, cid: str = "c1") -> ProbeTarget:
    return ProbeTarget(("p", "web", "readiness"), cid, probe, "127.0.0.1", port)


async def probe_http(status: bytes, probe: Probe = HTTP) -> ProbeResult:
    async with server(replying(status)) as port:
        return await run_probe(target(probe, port), FakeRuntime("n1"))


def test_2xx_and_3xx_pass_and_4xx_5xx_fail_with_the_status_code() -> None:
    ok = asyncio.run(probe_http(b"HTTP/1.1 200 OK"))
    redirect = asyncio.run(probe_http(b"HTTP/1.0 302 Found"))
    missing = asyncio.run(probe_http(b"HTTP/1.1 404 Not Found"))
    broken = asyncio.run(probe_http(b"HTTP/1.1 500 Internal Server Error"))

    assert ok == redirect == ProbeResult(True)
    assert missing == ProbeResult(False, "HTTP probe failed with statuscode: 404")
    assert broken == ProbeResult(False, "HTTP probe failed with statuscode: 500")


def test_a_reply_that_is_not_http_fails() -> None:
    result = asyncio.run(probe_http(b"SSH-2.0-OpenSSH_9.2"))

    assert result == ProbeResult(False, "HTTP probe failed: the reply is not an HTTP response")


def test_the_request_carries_path_host_and_the_probe_headers() -> None:
    requests: list[bytes] = []
    probe = replace(
        HTTP,
        path="ready?full=1",
        http_headers=(HTTPHeader("User-Agent", "custom"), HTTPHeader("X-Token", "t")),
    )

    async def scenario() -> ProbeResult:
        async with server(replying(b"HTTP/1.1 204 No Content", requests)) as port:
            return await run_probe(target(probe, port), FakeRuntime("n1"))

    assert asyncio.run(scenario()).ok
    lines = requests[0].decode().split("\r\n")
    assert lines[0] == "GET /ready?full=1 HTTP/1.1"
    assert lines[1].startswith("Host: 127.0.0.1:")
    assert "User-Agent: custom" in lines and "X-Token: t" in lines
    assert "Connection: close" in lines


def test_request_and_status_line_helpers() -> None:
    request = http_request("::1", 8080, HTTP).decode()

    assert request.startswith("GET /healthz HTTP/1.1\r\nHost: [::1]:8080\r\n")
    assert request.endswith("\r\n\r\n")
    assert parse_status_line(b"HTTP/1.1 503 Service Unavailable\r\n") == 503
    assert parse_status_line(b"garbage\r\n") is None
    assert parse_status_line(b"") is None


def test_a_refused_connection_fails_naming_the_address() -> None:
    port = closed_port()

    http = asyncio.run(run_probe(target(HTTP, port), FakeRuntime("n1")))
    tcp = asyncio.run(run_probe(target(TCP, port), FakeRuntime("n1")))

    assert http == ProbeResult(False, f"HTTP probe failed: 127.0.0.1:{port}: connection refused")
    assert tcp == ProbeResult(False, f"TCP probe failed: 127.0.0.1:{port}: connection refused")


def test_tcp_passes_when_the_port_accepts_a_connection() -> None:
    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.close()

    async def scenario() -> ProbeResult:
        async with server(silent) as port:
            return await run_probe(target(TCP, port), FakeRuntime("n1"))

    assert asyncio.run(scenario()) == ProbeResult(True)


def test_a_server_that_never_answers_times_out_after_timeout_seconds() -> None:
    release = asyncio.Event()

    async def mute(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await release.wait()
        writer.close()

    async def scenario() -> tuple[ProbeResult, int]:
        async with server(mute) as port:
            try:
                return await run_probe(target(HTTP, port), FakeRuntime("n1")), port
            finally:
                release.set()

    result, port = asyncio.run(scenario())

    assert result == ProbeResult(False, f"HTTP probe to 127.0.0.1:{port} timed out after 1s")


def test_exec_passes_on_exit_zero_and_fails_with_the_exit_code_and_output() -> None:
    engine = FakeEngine()
    engine.present_images.add("img")
    engine.exec_results[("cat", "/tmp/ready")] = ExecResult(1, "cat: can't open '/tmp/ready'\n")
    runtime = FakeRuntime("n1", engine)

    async def scenario() -> tuple[ProbeResult, ProbeResult, ProbeResult]:
        info = await runtime.create_and_start(
            ContainerConfig("c", "img", {"pinnace.node": "n1", "pinnace.pod": "p"})
        )
        ok = await run_probe(target(Probe(kind="exec", command=("true",)), cid=info.id), runtime)
        bad = await run_probe(
            target(Probe(kind="exec", command=("cat", "/tmp/ready")), cid=info.id), runtime
        )
        engine.crash(info.id)
        gone = await run_probe(target(Probe(kind="exec", command=("true",)), cid=info.id), runtime)
        return ok, bad, gone

    ok, bad, gone = asyncio.run(scenario())

    assert ok == ProbeResult(True)
    assert bad == ProbeResult(
        False, "command cat /tmp/ready exited with 1: cat: can't open '/tmp/ready'"
    )
    assert not gone.ok and gone.message.startswith("exec probe failed: cannot exec in")
    assert [cmd for _, cmd in engine.execs] == [("true",), ("cat", "/tmp/ready")]


def test_a_target_that_could_not_be_aimed_fails_without_io() -> None:
    aimed = replace(target(HTTP), error="port 81 of the container is not published")

    result = asyncio.run(run_probe(aimed, FakeRuntime("n1")))

    assert result == ProbeResult(
        False, "HTTP probe failed: port 81 of the container is not published"
    )


def test_a_connection_closed_without_a_reply_says_so() -> None:
    async def hang_up(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")  # closing with unread data would reset
        writer.close()

    async def scenario() -> tuple[ProbeResult, int]:
        async with server(hang_up) as port:
            return await run_probe(target(HTTP, port), FakeRuntime("n1")), port

    result, port = asyncio.run(scenario())

    assert result == ProbeResult(
        False, f"HTTP probe failed: 127.0.0.1:{port}: closed without a response"
    )
