"""pods/NAME/portforward: kubectl's SPDY streams and the channel WebSocket, to the pod's ports.

kubectl 1.31 and later open `GET .../portforward` as a WebSocket with the
sub-protocol `SPDY/3.1+portforward.k8s.io` and speak SPDY/3.1 inside it
(master/api/kube/spdy.py); when that upgrade fails they fall back to a plain
SPDY upgrade (POST, master/api/kube/upgrade.py), served too. For every connection accepted
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

The official Python client (kubernetes.stream.portforward) speaks the kubelet's older
channel protocol instead (sub-protocol `v4.channel.k8s.io`, master/api/kube/
portforward_ws.py): one connection per port named in `?ports=`, each port two channels
on one WebSocket. Both run each connection through relay_port below.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from aiohttp import WSMsgType, web

from master.api.exec import ExecRelay
from master.api.kube import errors, portforward_ws, spdy, upgrade
from master.api.kube.portrelay import END, Forwarded, PodTarget, parse_port, relay_port
from master.model import DEFAULT_NAMESPACE
from master.state import ClusterState

log = logging.getLogger(__name__)

PROTOCOL = "SPDY/3.1+portforward.k8s.io"
# The X-Stream-Protocol-Version of a plain SPDY upgrade.
SPDY_PROTOCOL = "portforward.k8s.io"


@dataclass(slots=True)
class Connection(Forwarded):
    """kubectl's error and data streams for one requestID."""

    request_id: str = ""
    error_stream: int = 0
    data_stream: int = 0


class ForwardSession:
    """One kubectl port-forward SPDY session (in a WebSocket, or a plain upgraded
    connection): its frames in, its connections' frames out."""

    def __init__(
        self,
        read: Callable[[], Awaitable[bytes]],
        write: Callable[[bytes], Awaitable[None]],
        target: PodTarget,
    ) -> None:
        self._read = read
        self._send = write
        self._target = target
        self._frames = spdy.FrameReader()
        self._headers = spdy.HeaderCodec()
        self._connections: dict[str, Connection] = {}
        self._streams: dict[int, Connection] = {}
        self._write_lock = asyncio.Lock()

    async def run(self) -> None:
        try:
            while data := await self._read():
                for frame in self._frames.feed(data):
                    if not await self._handle(frame):
                        return
        except spdy.SpdyError as e:
            log.info("port-forward to %s: %s", self._target.pod, e)
            with contextlib.suppress(Exception):
                await self._write(spdy.goaway(0))
        finally:
            for conn in self._connections.values():
                conn.client_gone()
            tasks = [c.task for c in self._connections.values() if c.task is not None]
            for task in tasks:
                task.cancel()
            for task in tasks:
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task

    async def _write(self, data: bytes) -> None:
        async with self._write_lock:
            await self._send(data)

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
                    await conn.input.put(END)
            return True
        if frame.type == spdy.SYN_STREAM:
            await self._open_stream(frame)
        elif frame.type == spdy.RST_STREAM:
            conn = self._streams.get(frame.stream_id)
            if conn is not None and frame.stream_id == conn.data_stream:
                # kubectl resets the data stream once the pod's side ended; or it gave up.
                conn.client_gone()
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
            conn = Connection(parse_port(headers.get("port", "")), request_id=request_id)
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
            await conn.input.put(END)
        if conn.data_stream and conn.task is None:
            conn.task = asyncio.create_task(self._forward(conn), name=f"port-forward-{request_id}")

    async def _forward(self, conn: Connection) -> None:
        """Relay one connection until either side ends it; then finish both streams."""
        failure = ""

        async def send(data: bytes) -> None:
            await self._write(spdy.data(conn.data_stream, data))

        try:
            failure = await relay_port(self._target, conn, send)
        finally:
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
    websocket = request.headers.get("Upgrade", "").lower() == "websocket"
    target = PodTarget(relay, pod.node_name, name, namespace)
    if websocket and PROTOCOL not in offered and portforward_ws.PROTOCOL in offered:
        return await portforward_ws.serve(request, target)
    if upgrade.wants_spdy(request):
        return await _serve_spdy(request, target)
    if not websocket or PROTOCOL not in offered:
        raise errors.bad_request(
            f"pinnace serves port-forward over WebSocket with the sub-protocol {PROTOCOL} "
            f"(kubectl 1.31 and later) or {portforward_ws.PROTOCOL} (the Python client), "
            f"and over a SPDY/3.1 upgrade with {SPDY_PROTOCOL} (older kubectls)"
        )
    ws = web.WebSocketResponse(
        protocols=(PROTOCOL,), autoping=True, max_msg_size=spdy.MAX_ACCEPTED + 16, compress=False
    )
    await ws.prepare(request)
    try:
        await ForwardSession(ws_reader(ws), _sender(ws), target).run()
    except (ConnectionResetError, asyncio.CancelledError):
        pass
    finally:
        with contextlib.suppress(Exception):
            await ws.close()
    return ws


async def _serve_spdy(request: web.Request, target: PodTarget) -> web.StreamResponse:
    """The plain SPDY/3.1 upgrade (master/api/kube/upgrade.py): the same session."""
    chosen = upgrade.choose(
        request.headers.getall("X-Stream-Protocol-Version", []), (SPDY_PROTOCOL,)
    )
    if chosen is None:
        raise errors.bad_request(
            f"port-forward over SPDY needs X-Stream-Protocol-Version: {SPDY_PROTOCOL}"
        )
    conn = await upgrade.upgrade(request, chosen)
    with contextlib.suppress(ConnectionResetError, asyncio.CancelledError):
        await ForwardSession(conn.read, conn.write, target).run()
    return conn.response


def _sender(ws: web.WebSocketResponse) -> Callable[[bytes], Awaitable[None]]:
    async def send(data: bytes) -> None:
        await ws.send_bytes(data)

    return send


def ws_reader(ws: web.WebSocketResponse) -> Callable[[], Awaitable[bytes]]:
    """A WebSocket's binary messages as the bytes of one stream (b"" once it closes)."""

    async def read() -> bytes:
        while True:
            message = await ws.receive()
            if message.type == WSMsgType.BINARY and message.data:
                return bytes(message.data)
            if message.type in (WSMsgType.CLOSE, WSMsgType.CLOSING, WSMsgType.CLOSED,
                                WSMsgType.ERROR):  # fmt: skip
                return b""

    return read
