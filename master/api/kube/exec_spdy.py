"""pods/NAME/exec and /attach over a plain SPDY/3.1 upgrade (master/api/kube/upgrade.py).

Remote command protocol v4 (`X-Stream-Protocol-Version: v4.channel.k8s.io`), as the
kubelet serves it: instead of channel bytes, the client opens one SPDY stream per
stream of the command, named by its `streamType` header: `error` always, `stdin`,
`stdout`, `stderr` (not with a TTY) as asked in the query, and `resize` with a TTY, which
carries JSON terminal sizes one after another. stdin's FIN is its end. When the command
ends, the error stream gets the same Status a WebSocket's error channel does
(channels.exit_status), and the server finishes every stream; kubectl then exits with
the command's code. The command's output waits until the client's streams are all open
(at most STREAMS_TIMEOUT, as the kubelet's stream creation timeout).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging

from master.api.exec import ExecChannel, Exited
from master.api.kube import spdy
from master.api.kube.channels import ERROR, RESIZE, STDERR, STDIN, STDOUT, ExecParams, exit_status
from master.api.kube.upgrade import Upgraded

log = logging.getLogger(__name__)

PROTOCOLS = ("v4.channel.k8s.io",)
STREAM_TYPES = {"stdin": STDIN, "stdout": STDOUT, "stderr": STDERR, "error": ERROR,
                "resize": RESIZE}  # fmt: skip
STREAMS_TIMEOUT = 30.0


def expected_streams(params: ExecParams) -> frozenset[int]:
    """The streams a client opens for these query flags (client-go's v4 streamer)."""
    wanted = {ERROR}
    if params.stdin:
        wanted.add(STDIN)
    if params.stdout:
        wanted.add(STDOUT)
    if params.stderr and not params.tty:
        wanted.add(STDERR)
    if params.tty:
        wanted.add(RESIZE)
    return frozenset(wanted)


def terminal_sizes(buffer: bytes) -> tuple[list[tuple[int, int]], bytes]:
    """The complete JSON sizes (`{"Width": w, "Height": h}`) at the start of a resize
    stream's bytes, as (width, height), and the incomplete rest."""
    decoder = json.JSONDecoder()
    sizes: list[tuple[int, int]] = []
    text = buffer.decode(errors="replace")
    at = 0
    while True:
        while at < len(text) and text[at].isspace():
            at += 1
        try:
            size, at = decoder.raw_decode(text, at)
        except ValueError:
            return sizes, text[at:].encode()
        with contextlib.suppress(AttributeError, TypeError, ValueError):
            width, height = int(size.get("Width", 0)), int(size.get("Height", 0))
            if width > 0 and height > 0:
                sizes.append((width, height))


class ExecSpdySession:
    def __init__(
        self, conn: Upgraded, channel: ExecChannel, params: ExecParams, attach: bool
    ) -> None:
        self._conn = conn
        self._channel = channel
        self._params = params
        self._attach = attach
        self._frames = spdy.FrameReader()
        self._headers = spdy.HeaderCodec()
        self._kinds: dict[int, int] = {}  # stream id -> STDIN, STDOUT ...
        self._stream_of: dict[int, int] = {}  # STDIN, STDOUT ... -> stream id
        self._expected = expected_streams(params)
        self._ready = asyncio.Event()
        self._resize = b""
        self._write_lock = asyncio.Lock()

    async def _write(self, data: bytes) -> None:
        async with self._write_lock:
            await self._conn.write(data)

    async def run(self) -> None:
        reader = asyncio.create_task(self._read_client())
        try:
            ready = asyncio.create_task(self._ready.wait())
            await asyncio.wait({ready, reader}, timeout=STREAMS_TIMEOUT,
                               return_when=asyncio.FIRST_COMPLETED)  # fmt: skip
            ready.cancel()
            if not self._ready.is_set():
                return
            await self._relay_output()
        finally:
            reader.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await reader

    async def _relay_output(self) -> None:
        while True:
            event = await self._channel.next()
            if isinstance(event, Exited):
                code = 0 if self._attach and not event.error else event.code
                status = exit_status(code, event.error, self._params.command)
                await self._write(spdy.data(self._stream_of[ERROR], json.dumps(status).encode()))
                for opened in self._kinds:
                    await self._write(spdy.data(opened, b"", fin=True))
                return
            stream_id = self._stream_of.get(event.stream)
            if stream_id is not None and event.data:
                await self._write(spdy.data(stream_id, event.data))

    async def _read_client(self) -> None:
        try:
            while data := await self._conn.read():
                for frame in self._frames.feed(data):
                    if not await self._handle(frame):
                        return
        except spdy.SpdyError as e:
            log.info("exec over SPDY: %s", e)
        finally:
            self._channel.client_gone()

    async def _handle(self, frame: spdy.Frame) -> bool:
        if not frame.control:
            kind = self._kinds.get(frame.stream_id)
            if kind == STDIN and self._params.stdin:
                if frame.payload:
                    await self._channel.stdin(frame.payload)
                if frame.fin:
                    self._channel.close_stdin()
            elif kind == RESIZE:
                sizes, self._resize = terminal_sizes(self._resize + frame.payload)
                for width, height in sizes:
                    self._channel.resize(width, height)
            return True
        if frame.type == spdy.SYN_STREAM:
            headers = spdy.syn_stream_headers(frame, self._headers)
            kind = STREAM_TYPES.get(headers.get("streamtype", ""))
            if kind is None:
                await self._write(spdy.rst_stream(frame.stream_id, spdy.PROTOCOL_ERROR))
                return True
            await self._write(spdy.syn_reply(frame.stream_id, self._headers))
            self._kinds[frame.stream_id] = kind
            self._stream_of[kind] = frame.stream_id
            if kind == STDIN and frame.fin:
                self._channel.close_stdin()
            if self._expected <= self._stream_of.keys():
                self._ready.set()
        elif frame.type == spdy.PING:
            await self._write(spdy.ping_reply(frame))
        elif frame.type == spdy.GOAWAY:
            return False
        return True
