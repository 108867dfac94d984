"""Port-forward: SPDY/3.1 framing (master) and the agent's TCP relay with its output window."""

from __future__ import annotations

import asyncio
import struct
import time
import zlib

import pytest

from agent.exec import OUTPUT_WINDOW, ExecInput, ExecOrder, ExecRunner
from agent.port_forward import forward_target
from agent.runtime.fake_runtime import FakeEngine, FakeRuntime
from agent.runtime.port import ContainerInfo
from master.api.kube import spdy
from master.api.kube.portrelay import parse_port


def _syn_stream(stream_id: int, headers: dict[str, str], codec: spdy.HeaderCodec) -> bytes:
    """A client's SYN_STREAM, as client-go writes it."""
    payload = struct.pack(">IIBB", stream_id, 0, 0, 0) + codec.encode(headers)
    return (
        struct.pack(">HHB", 0x8003, spdy.SYN_STREAM, 0)
        + len(payload).to_bytes(3, "big")
        + (payload)
    )


def test_the_dictionary_is_spdy3s() -> None:
    # Length and Adler-32 of the draft-3 dictionary (what a zlib stream's DICTID names).
    assert len(spdy.DICTIONARY) == 1423
    assert zlib.adler32(spdy.DICTIONARY) == 0xE3C6A7C2


def test_frames_split_anywhere_come_out_whole_and_headers_survive_the_shared_context() -> None:
    client = spdy.HeaderCodec()
    wire = (
        _syn_stream(1, {"streamtype": "error", "port": "80", "requestid": "0"}, client)
        + spdy.data(1, b"", fin=True)
        + _syn_stream(3, {"streamtype": "data", "port": "80", "requestid": "0"}, client)
        + spdy.data(3, b"GET / HTTP/1.1\r\n\r\n")
    )
    reader, server = spdy.FrameReader(), spdy.HeaderCodec()
    frames = [f for i in range(0, len(wire), 7) for f in reader.feed(wire[i : i + 7])]
    assert [(f.control, f.type, f.stream_id, f.fin) for f in frames] == [
        (True, spdy.SYN_STREAM, 1, False),
        (False, 0, 1, True),
        (True, spdy.SYN_STREAM, 3, False),
        (False, 0, 3, False),
    ]
    assert spdy.syn_stream_headers(frames[0], server)["streamtype"] == "error"
    # The second block only decodes with the context the first one left.
    assert spdy.syn_stream_headers(frames[2], server) == {
        "streamtype": "data", "port": "80", "requestid": "0",
    }  # fmt: skip
    assert frames[3].payload == b"GET / HTTP/1.1\r\n\r\n"


def test_server_frames_are_laid_out_as_spdy3() -> None:
    reply = spdy.syn_reply(5, spdy.HeaderCodec())
    assert reply[:4] == bytes([0x80, 0x03, 0x00, spdy.SYN_REPLY])
    assert int.from_bytes(reply[5:8], "big") == len(reply) - 8
    assert int.from_bytes(reply[8:12], "big") == 5
    assert spdy.data(7, b"xy", fin=True) == bytes([0, 0, 0, 7, 1, 0, 0, 2]) + b"xy"
    ping = spdy.FrameReader().feed(bytes([0x80, 3, 0, 6, 0, 0, 0, 4, 0, 0, 0, 9]))[0]
    assert spdy.ping_reply(ping) == bytes([0x80, 3, 0, 6, 0, 0, 0, 4, 0, 0, 0, 9])


def test_broken_input_is_a_protocol_error_not_a_crash() -> None:
    with pytest.raises(spdy.SpdyError, match="version 2"):
        spdy.FrameReader().feed(bytes([0x80, 2, 0, 1, 0, 0, 0, 0]))
    with pytest.raises(spdy.SpdyError, match="larger than accepted"):
        spdy.FrameReader().feed(bytes([0, 0, 0, 1, 0, 0x7F, 0, 0]))
    with pytest.raises(spdy.SpdyError, match="does not decompress"):
        spdy.HeaderCodec().decode(b"not zlib")


def test_ports_are_checked_before_anything_is_opened() -> None:
    assert parse_port("8080") == 8080
    assert "invalid port" in str(parse_port("http"))
    assert "invalid port" in str(parse_port("70000"))


def _container(pod: str, **kw: object) -> ContainerInfo:
    return ContainerInfo(id=f"id-{pod}", name=pod, image="i", state="running",
                         labels={"pinnace.pod": pod, "pinnace.container": "c"}, **kw)  # type: ignore[arg-type]  # fmt: skip


def test_the_agent_connects_where_its_probes_go() -> None:
    on_bridge = _container("web", probe_address="172.17.0.5", ports={"80/TCP": 32001})
    published = _container("api", ports={"80/TCP": 32002})
    assert forward_target([on_bridge], "web", 8080, "10.0.0.9") == ("172.17.0.5", 8080)
    assert forward_target([published], "api", 80, "0.0.0.0") == ("127.0.0.1", 32002)
    assert forward_target([published], "api", 80, "10.0.0.9") == ("10.0.0.9", 32002)
    assert "declare it in the container's ports" in str(forward_target([published], "api", 81, ""))
    assert "no running container" in str(forward_target([published], "gone", 80, ""))


def test_a_forward_reads_from_the_pod_no_further_than_its_window() -> None:
    """The agent relays a real TCP connection; unacknowledged output stops its reading."""

    async def run() -> None:
        sent = 1 << 22

        async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            request = await reader.readexactly(5)
            writer.write(request + bytes(sent))
            await writer.drain()
            writer.close()

        server = await asyncio.start_server(serve, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        runtime = FakeRuntime("n1", FakeEngine())
        runner = ExecRunner(runtime, "127.0.0.1")
        pod = _container("p", probe_address="127.0.0.1")
        runtime.list_containers = lambda: _listed([pod])  # type: ignore[method-assign]
        out: list[tuple[bytes, bool, str]] = []
        acking = False  # the master passes output on as it comes (once the hold is seen)
        ended = asyncio.Event()

        def send(_r: str, _s: int, data: bytes, end: bool, _c: int, err: str, _n: int) -> None:
            if data or end:  # not the stdin acknowledgements
                out.append((data, end, err))
            if end:
                ended.set()
            elif data and acking:
                runner.input(ExecInput("r1", output_done=len(out)))

        runner.start(ExecOrder("r1", "p", "", (), port=port), send)
        window = runner._windows["r1"]
        runner.input(ExecInput("r1", data=b"hello"))
        runner.input(ExecInput("r1", close_stdin=True))
        # Until the relay is held by its window (or, reading past it, has sent everything):
        # while it is held nothing more is read, so the count below is final, not a sample.
        deadline = time.monotonic() + 30
        while not (window.waiting or ended.is_set()):
            assert time.monotonic() < deadline, f"neither held nor done: {len(out)} sent"
            await asyncio.sleep(0.01)
        assert len(out) == OUTPUT_WINDOW  # held back: nothing passed on yet
        acking = True
        runner.input(ExecInput("r1", output_done=len(out)))
        await asyncio.wait_for(ended.wait(), 30)
        data = b"".join(d for d, _, _ in out)
        assert data == b"hello" + bytes(sent) and out[-1][2] == ""
        server.close()
        await server.wait_closed()

    asyncio.run(run())


async def _listed(containers: list[ContainerInfo]) -> list[ContainerInfo]:
    return containers


# -- the Python client's channel WebSocket (master/api/kube/portforward_ws.py) ---------------


def test_channel_port_forward_ports_first_frames_and_client_data() -> None:
    from master.api.kube.portforward_ws import client_data, parse_ports, port_frames

    assert parse_ports(["80,8080"]) == [80, 8080]
    assert parse_ports(["80", "443"]) == [80, 443]  # repeated ports= as Kubernetes reads them
    assert parse_ports([]) == "the query parameter ports is required (ports=80,8080)"
    assert parse_ports(["80,80"]) == "port 80 is named twice"
    assert "invalid port 'x'" in str(parse_ports(["80,x"]))
    # Port i: data channel 2i and error channel 2i+1, each opening with the port, little-endian.
    assert port_frames(0, 80) == (b"\x00P\x00", b"\x01P\x00")
    assert port_frames(1, 8080) == (b"\x02\x90\x1f", b"\x03\x90\x1f")
    assert client_data(b"\x02hello", 2) == (1, b"hello")
    assert client_data(b"\x01oops", 2) is None  # error channels are the server's
    assert client_data(b"\x04x", 2) is None and client_data(b"", 2) is None
