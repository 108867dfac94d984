"""pods/NAME/portforward as the channel WebSocket the official Python client speaks.

`kubernetes.stream.portforward(..., ports="80,8080")` opens `GET .../portforward?ports=...`
offering `v5.channel.k8s.io` and `v4.channel.k8s.io`; as the kubelet does, pinnace answers
`v4.channel.k8s.io` (port-forward has no v5). Port i of the query gets two channels: 2i
carries data both ways, 2i+1 the server's error text. Each channel's first message is the
port as two little-endian bytes, which the client checks. There is exactly one connection
per port; the client gives no sign of a half-close, so a connection lasts until the pod's
side ends it or the client closes the WebSocket; when every port's connection has ended,
the server closes the WebSocket (the client then closes its sockets). Each connection is
relayed as kubectl's are (master/api/kube/portrelay.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import struct
from collections.abc import Sequence
from typing import Any

from aiohttp import WSMsgType, web

from master.api.kube import errors
from master.api.kube.portrelay import Forwarded, PodTarget, parse_port, relay_port

PROTOCOL = "v4.channel.k8s.io"
# The largest client message read: the Python client sends at most 1 MiB at once.
MAX_MESSAGE = (1 << 20) + 16


def parse_ports(values: Sequence[str]) -> list[int] | str:
    """`?ports=80,8080` (or repeated `ports=`) -> the ports, or why they are not."""
    ports: list[int] = []
    for text in (p.strip() for value in values for p in value.split(",")):
        port = parse_port(text)
        if isinstance(port, str):
            return port
        if port in ports:
            return f"port {port} is named twice"
        ports.append(port)
    if not ports:
        return "the query parameter ports is required (ports=80,8080)"
    return ports


def data_channel(index: int) -> int:
    return 2 * index


def error_channel(index: int) -> int:
    return 2 * index + 1


def port_frames(index: int, port: int) -> tuple[bytes, bytes]:
    """The first message of port `index`'s data and error channels: the port it forwards."""
    number = struct.pack("<H", port)
    return bytes([data_channel(index)]) + number, bytes([error_channel(index)]) + number


def client_data(message: bytes, ports: int) -> tuple[int, bytes] | None:
    """(port index, bytes) of a client message on a data channel; None for anything else
    (an empty message, a channel past the ports, or an error channel: those are the
    server's)."""
    if not message:
        return None
    index, kind = divmod(message[0], 2)
    if kind or index >= ports:
        return None
    return index, message[1:]


class ChannelSession:
    """One Python client's port-forward WebSocket: its ports' connections, then close."""

    def __init__(self, ws: web.WebSocketResponse, target: PodTarget, ports: list[int]) -> None:
        self._ws = ws
        self._target = target
        self._ports = ports
        self._conns = [Forwarded(port) for port in ports]
        self._write_lock = asyncio.Lock()

    async def _write(self, data: bytes) -> None:
        async with self._write_lock:
            await self._ws.send_bytes(data)

    async def run(self) -> None:
        for index, port in enumerate(self._ports):
            for first in port_frames(index, port):
                await self._write(first)
        for index, conn in enumerate(self._conns):
            conn.task = asyncio.create_task(self._forward(index, conn))
        tasks = [c.task for c in self._conns if c.task is not None]
        reader = asyncio.create_task(self._read())
        forwards = asyncio.gather(*tasks, return_exceptions=True)
        either: set[asyncio.Future[Any]] = {reader, forwards}
        try:
            await asyncio.wait(either, return_when=asyncio.FIRST_COMPLETED)
        finally:
            reader.cancel()
            for conn in self._conns:
                conn.client_gone()
            for task in tasks:
                task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await forwards
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await reader

    async def _read(self) -> None:
        """The client's bytes to their connections, until it closes the WebSocket."""
        async for message in self._ws:
            if message.type != WSMsgType.BINARY:
                continue
            found = client_data(message.data, len(self._conns))
            if found is None or not found[1]:
                continue
            conn = self._conns[found[0]]
            if not conn.reset and conn.task is not None and not conn.task.done():
                await conn.input.put(found[1])

    async def _forward(self, index: int, conn: Forwarded) -> None:
        async def send(data: bytes) -> None:
            await self._write(bytes([data_channel(index)]) + data)

        failure = await relay_port(self._target, conn, send)
        if failure and not conn.reset:
            with contextlib.suppress(Exception):
                await self._write(bytes([error_channel(index)]) + failure.encode())


async def serve(request: web.Request, target: PodTarget) -> web.StreamResponse:
    ports = parse_ports(request.query.getall("ports", []) or request.query.getall("port", []))
    if isinstance(ports, str):
        raise errors.bad_request(f"unable to forward ports of pod {target.pod}: {ports}")
    ws = web.WebSocketResponse(
        protocols=(PROTOCOL,), autoping=True, max_msg_size=MAX_MESSAGE, compress=False
    )
    await ws.prepare(request)
    try:
        await ChannelSession(ws, target, ports).run()
    except (ConnectionResetError, asyncio.CancelledError):
        pass
    finally:
        with contextlib.suppress(Exception):
            await ws.close()
    return ws
