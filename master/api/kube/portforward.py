"""pods/NAME/portforward: kubectl's SPDY streams, tunnelled in a WebSocket, to the pod's ports.

kubectl 1.31 and later open `GET .../portforward` as a WebSocket with the
sub-protocol `SPDY/3.1+portforward.k8s.io` and speak SPDY/3.1 inside it
(master/api/kube/spdy.py); when that upgrade fails they fall back to a plain
SPDY upgrade (POST), which pinnace does not serve. For every connection accepted
on the local port, kubectl opens two streams carrying the same `requestID` and
`port` headers: an error stream (closed at once from its side) and a data stream.
The kubelet's part is played here and by the agent: each pair becomes one relay
over the pod's node session (master/api/exec.py, an ExecStart with `port`), the
agent connecting to the pod (agent/port_forward.py). The data stream's bytes go
down as stdin (paced by the agent's window), the pod's bytes come back as DATA
frames, and whatever ends the connection is said on the error stream (nothing when
the pod simply closed it) before both streams are finished. Several connections
run at once on one WebSocket, each its own task; a connection whose input queue is
full holds up reading from the WebSocket (TCP's window then slows kubectl), so
memory stays bounded.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass, field

from aiohttp import WSMsgType, web

from master.api.exec import ExecChannel, ExecRelay, ExecUnavailable, Exited
from master.api.kube import errors, spdy
from master.model import DEFAULT_NAMESPACE
from master.state import ClusterState

log = logging.getLogger(__name__)

PROTOCOL = "SPDY/3.1+portforward.k8s.io"
# Pieces of one connection's input waiting to go down to the agent.
INPUT_QUEUE = 16
# Acknowledge outputs to the agent every this many (its window is agent/exec.py's).
ACK_EVERY = 4
_END = b""


def parse_port(text: str) -> int | str:
    """A stream's `port` header -> the port, or why it is not one."""
    if not text.isdigit() or not 0 < int(text) < 65536:
        return f"invalid port {text[:20]!r}: a TCP port number (1-65535) is required"
    return int(text)


@dataclass(slots=True)
class Connection:
    """One forwarded connection: kubectl's error and data streams for one requestID."""

    request_id: str
    port: int | str
    error_stream: int = 0
    data_stream: int = 0
    input: asyncio.Queue[bytes] = field(default_factory=lambda: asyncio.Queue(INPUT_QUEUE))
    task: asyncio.Task[None] | None = None
    channel: ExecChannel | None = None
    reset: bool = False


class ForwardSession:
    """One kubectl port-forward WebSocket: its SPDY frames in, its connections' frames out."""

    def __init__(
        self, ws: web.WebSocketResponse, relay: ExecRelay, node: str, pod: str, namespace: str
    ) -> None:
        self._ws = ws
        self._relay = relay
        self._node = node
        self._pod = pod
        self._namespace = namespace
        self._frames = spdy.FrameReader()
        self._headers = spdy.HeaderCodec()
        self._connections: dict[str, Connection] = {}
        self._streams: dict[int, Connection] = {}
        self._write_lock = asyncio.Lock()

    async def run(self) -> None:
        try:
            async for message in self._ws:
                if message.type != WSMsgType.BINARY:
                    continue
                for frame in self._frames.feed(message.data):
                    if not await self._handle(frame):
                        return
        except spdy.SpdyError as e:
            log.info("port-forward to %s: %s", self._pod, e)
            with contextlib.suppress(Exception):
                await self._write(spdy.goaway(0))
        finally:
            for conn in self._connections.values():
                if conn.channel is not None:
                    conn.channel.client_gone()
            tasks = [c.task for c in self._connections.values() if c.task is not None]
            for task in tasks:
                task.cancel()
            for task in tasks:
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task

    async def _write(self, data: bytes) -> None:
        async with self._write_lock:
            await self._ws.send_bytes(data)

    async def _handle(self, frame: spdy.Frame) -> bool:
        """Act on one frame; False when the client is going away."""
        if not frame.control:
            conn = self._streams.get(frame.stream_id)
            if (
                conn is not None
                and frame.stream_id == conn.data_stream
                and not conn.reset
                and not (conn.task is not None and conn.task.done())
            ):
                if frame.payload:
                    await conn.input.put(frame.payload)
                if frame.fin:
                    await conn.input.put(_END)
            return True
        if frame.type == spdy.SYN_STREAM:
            await self._open_stream(frame)
        elif frame.type == spdy.RST_STREAM:
            conn = self._streams.get(frame.stream_id)
            if conn is not None and frame.stream_id == conn.data_stream:
                # kubectl resets the data stream once the pod's side ended; or it gave up.
                conn.reset = True
                if conn.channel is not None and not conn.channel.ended:
                    conn.channel.client_gone()
        elif frame.type == spdy.PING:
            await self._write(spdy.ping_reply(frame))
        elif frame.type == spdy.GOAWAY:
            return False
        # SETTINGS, WINDOW_UPDATE, HEADERS: nothing to do (no flow control in spdystream).
        return True

    async def _open_stream(self, frame: spdy.Frame) -> None:
        headers = spdy.syn_stream_headers(frame, self._headers)
        stream_id = frame.stream_id
        await self._write(spdy.syn_reply(stream_id, self._headers))
        request_id = headers.get("requestid", f"stream-{stream_id}")
        conn = self._connections.get(request_id)
        if conn is None:
            conn = Connection(request_id, parse_port(headers.get("port", "")))
            self._connections[request_id] = conn
        self._streams[stream_id] = conn
        kind = headers.get("streamtype", "")
        if kind == "error":
            conn.error_stream = stream_id
        elif kind == "data":
            conn.data_stream = stream_id
        else:
            await self._write(spdy.rst_stream(stream_id, spdy.PROTOCOL_ERROR))
            return
        if frame.fin and kind == "data":
            await conn.input.put(_END)
        if conn.data_stream and conn.task is None:
            conn.task = asyncio.create_task(self._forward(conn), name=f"port-forward-{request_id}")

    async def _forward(self, conn: Connection) -> None:
        """Relay one connection until either side ends it; then finish both streams."""
        failure = ""
        pump: asyncio.Task[None] | None = None
        try:
            if isinstance(conn.port, str):
                failure = conn.port
                return
            try:
                channel = self._relay.open(
                    self._node, self._pod, "", [], False, False,
                    namespace=self._namespace, port=conn.port,
                )  # fmt: skip
            except ExecUnavailable as e:
                failure = str(e)
                return
            conn.channel = channel
            pump = asyncio.create_task(_pump_input(conn.input, channel))
            passed = 0
            while True:
                event = await channel.next()
                if isinstance(event, Exited):
                    if event.error and not conn.reset:
                        failure = event.error
                    return
                if not conn.reset:
                    await self._write(spdy.data(conn.data_stream, event.data))
                passed += 1
                if passed % ACK_EVERY == 0:
                    channel.passed_on(passed)
        finally:
            if pump is not None:
                pump.cancel()
            while not conn.input.empty():  # a reader blocked on a full queue goes on
                conn.input.get_nowait()
            if conn.channel is not None:
                conn.channel.close()
            with contextlib.suppress(Exception):
                await self._finish(conn, failure)

    async def _finish(self, conn: Connection, failure: str) -> None:
        if conn.error_stream:
            if failure:
                await self._write(spdy.data(conn.error_stream, failure.encode()))
            await self._write(spdy.data(conn.error_stream, b"", fin=True))
        if not conn.reset:
            await self._write(spdy.data(conn.data_stream, b"", fin=True))
        self._connections.pop(conn.request_id, None)
        for stream in (conn.error_stream, conn.data_stream):
            self._streams.pop(stream, None)


async def _pump_input(queue: asyncio.Queue[bytes], channel: ExecChannel) -> None:
    """The client's bytes down to the agent, in order; its half-close after them."""
    while True:
        data = await queue.get()
        if data == _END:
            channel.close_stdin()
            return
        await channel.stdin(data)


async def serve_port_forward(
    request: web.Request,
    state: ClusterState,
    relay: ExecRelay | None,
    name: str,
    namespace: str = DEFAULT_NAMESPACE,
) -> web.StreamResponse:
    pod = state.pod(name, namespace)
    if pod is None:
        raise errors.not_found("pods", "", name)
    if not pod.node_name or pod.status.phase != "Running":
        raise errors.bad_request(
            f"unable to forward ports of pod {name}: it is not running "
            f"(phase {pod.status.phase or 'Pending'})"
        )
    if relay is None:
        raise errors.KubeError(503, "ServiceUnavailable", "this master relays no port-forwards")
    offered = {p.strip() for p in request.headers.get("Sec-WebSocket-Protocol", "").split(",")}
    if request.headers.get("Upgrade", "").lower() != "websocket" or PROTOCOL not in offered:
        raise errors.bad_request(
            f"pinnace serves port-forward over WebSocket only, with the sub-protocol {PROTOCOL} "
            "(kubectl 1.31 and later use it); SPDY upgrades are not supported"
        )
    ws = web.WebSocketResponse(
        protocols=(PROTOCOL,), autoping=True, max_msg_size=spdy.MAX_ACCEPTED + 16, compress=False
    )
    await ws.prepare(request)
    try:
        await ForwardSession(ws, relay, pod.node_name, name, namespace).run()
    except (ConnectionResetError, asyncio.CancelledError):
        pass
    finally:
        with contextlib.suppress(Exception):
            await ws.close()
    return ws
