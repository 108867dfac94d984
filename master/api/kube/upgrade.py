"""The plain SPDY/3.1 upgrade: an HTTP request whose connection becomes a SPDY session.

kubectl before 1.30 (exec, attach, cp) and 1.31 (port-forward), and later ones when the
WebSocket upgrade fails or `KUBECTL_REMOTE_COMMAND_WEBSOCKETS=false` /
`KUBECTL_PORT_FORWARD_WEBSOCKETS=false`, send `POST` with `Connection: Upgrade`,
`Upgrade: SPDY/3.1` and one `X-Stream-Protocol-Version` header per sub-protocol they speak
(exec: v5, v4, v3, v2 and plain channel.k8s.io; port-forward: portforward.k8s.io). The
server answers `101 Switching Protocols` naming the one it chose, and from then on the TCP
(TLS) connection carries SPDY frames both ways (master/api/kube/spdy.py).

aiohttp upgrades only to WebSocket, so this takes the connection over as its WebSocket
does: once the 101 is written, the request's protocol hands every byte it receives to a
reader of ours (RequestHandler.set_parser) and writes go to the transport; reading pauses
while READ_AHEAD bytes wait, so a fast client cannot fill the master's memory.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any, cast

from aiohttp import web

SPDY = "SPDY/3.1"
READ_AHEAD = 1 << 20


def wants_spdy(request: web.BaseRequest) -> bool:
    offered = request.headers.get("Upgrade", "")
    return SPDY.lower() in (u.strip().lower() for u in offered.split(","))


def choose(offered: Sequence[str], supported: Sequence[str]) -> str | None:
    """The first of the client's `X-Stream-Protocol-Version`s this server speaks."""
    names = [n.strip() for value in offered for n in value.split(",") if n.strip()]
    return next((n for n in names if n in supported), None)


class _Reader:
    """What aiohttp's protocol feeds once the request is upgraded (its payload-parser
    interface: feed_data -> (eof, tail), feed_eof)."""

    def __init__(self, transport: asyncio.Transport) -> None:
        self._transport = transport
        self._chunks: asyncio.Queue[bytes] = asyncio.Queue()
        self._waiting = 0
        self._paused = False

    def feed_data(self, data: bytes) -> tuple[bool, bytes]:
        if data:
            self._chunks.put_nowait(bytes(data))
            self._waiting += len(data)
            if self._waiting > READ_AHEAD and not self._paused:
                self._paused = True
                self._transport.pause_reading()
        return False, b""

    def feed_eof(self) -> None:
        self._chunks.put_nowait(b"")

    async def read(self) -> bytes:
        chunk = await self._chunks.get()
        self._waiting -= len(chunk)
        if self._paused and self._waiting <= READ_AHEAD // 2:
            self._paused = False
            self._transport.resume_reading()
        return chunk


class Upgraded:
    """The connection of an upgraded request: bytes in (b"" at its end) and out."""

    def __init__(
        self, response: web.StreamResponse, writer: Any, transport: asyncio.Transport
    ) -> None:
        self.response = response
        self._writer = writer
        self._transport = transport
        self._reader = _Reader(transport)

    async def read(self) -> bytes:
        return await self._reader.read()

    async def write(self, data: bytes) -> None:
        if self._transport.is_closing():
            raise ConnectionResetError("the client has gone")
        self._transport.write(data)
        await self._writer.drain()


async def upgrade(request: web.Request, protocol: str) -> Upgraded:
    """Answer 101 choosing `protocol`; the connection is then the caller's."""
    transport = request.transport
    if transport is None:
        raise ConnectionResetError("the client has gone")
    response = web.StreamResponse(
        status=101,
        reason="Switching Protocols",
        headers={
            "Connection": "Upgrade",
            "Upgrade": SPDY,
            "X-Stream-Protocol-Version": protocol,
        },
    )
    response.force_close()  # never another HTTP request on this connection
    writer = await response.prepare(request)
    upgraded = Upgraded(response, writer, transport)
    request.protocol.set_parser(cast(Any, upgraded._reader))
    await response.write(b"")  # the 101 out now: the client speaks only after it
    return upgraded
