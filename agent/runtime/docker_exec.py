"""An interactive exec on Docker: the engine's hijacked connection, read on a thread.

Docker starts an exec with `POST /exec/ID/start` and then hands the HTTP connection
over as a raw byte pipe: stdin goes down it, output comes up (multiplexed with 8-byte
frame headers without a TTY, raw with one). docker-py returns that socket; a daemon
thread reads frames from it (a blocking read never returns on its own while the
command runs) and hands them to the event loop; writes, the half-close that ends
stdin, and resizes are short blocking calls run in the runtime's thread pool.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import threading
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from typing import Any

from docker.utils.socket import frames_iter

from agent.runtime.port import RuntimeFailure
from agent.runtime.thread_pump import pumped

# How long to wait for the engine to notice that a command whose output ended has exited.
_EXIT_WAIT_SECONDS = 5.0


class DockerExecSession:
    def __init__(
        self,
        api: Any,
        exec_id: str,
        raw: Any,
        tty: bool,
        call: Callable[..., Awaitable[Any]],
    ) -> None:
        self._api = api
        self._exec_id = exec_id
        self._raw = raw
        # The real socket under docker-py's SocketIO (sendall and shutdown live there).
        self._sock: socket.socket = getattr(raw, "_sock", raw)
        self._tty = tty
        self._call = call
        self._closed = threading.Event()

    async def output(self) -> AsyncIterator[tuple[int, bytes]]:
        def frames() -> Iterator[tuple[int, bytes]]:
            for stream, data in frames_iter(self._raw, self._tty):  # type: ignore[no-untyped-call]
                if data:
                    yield int(stream), bytes(data)

        def broke(exc: BaseException) -> Exception:
            return RuntimeFailure(f"the exec's connection to Docker broke: {exc}")

        name = f"docker-exec-{self._exec_id[:12]}"
        async for item in pumped(frames(), name, self._closed, broke):
            yield item

    async def write(self, data: bytes) -> None:
        try:
            await self._call(self._sock.sendall, data)
        except OSError as exc:
            raise RuntimeFailure(f"cannot write to the command's stdin: {exc}") from exc

    async def close_stdin(self) -> None:
        # Docker closes the command's stdin when its side of the pipe is half-closed.
        with contextlib.suppress(OSError):
            await self._call(self._sock.shutdown, socket.SHUT_WR)

    async def resize(self, width: int, height: int) -> None:
        with contextlib.suppress(Exception):  # a command that just ended: nothing to resize
            await self._call(self._api.exec_resize, self._exec_id, height, width)

    async def exit_code(self) -> int:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + _EXIT_WAIT_SECONDS
        while True:
            facts = await self._call(self._api.exec_inspect, self._exec_id)
            code = facts.get("ExitCode")
            if code is not None and not facts.get("Running"):
                return int(code)
            if loop.time() >= deadline:
                # The engine lost track of it: a failure, never a success.
                return -1
            await asyncio.sleep(0.05)

    async def close(self) -> None:
        self._closed.set()
        with contextlib.suppress(OSError):
            self._sock.shutdown(socket.SHUT_RDWR)
        with contextlib.suppress(OSError):
            self._sock.close()
        with contextlib.suppress(Exception):
            self._raw.close()


class DockerAttachSession(DockerExecSession):
    """The container's main process (`kubectl attach`): Docker's attach connection, read
    and written as an exec's. Its end is the process's: the container's exit code (0
    when the container still runs: the client detached)."""

    def __init__(
        self,
        api: Any,
        container_id: str,
        raw: Any,
        tty: bool,
        call: Callable[..., Awaitable[Any]],
    ) -> None:
        super().__init__(api, container_id, raw, tty, call)
        self._container_id = container_id

    async def resize(self, width: int, height: int) -> None:
        with contextlib.suppress(Exception):  # a container that just ended
            await self._call(self._api.resize, self._container_id, height, width)

    async def exit_code(self) -> int:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + _EXIT_WAIT_SECONDS
        while True:
            try:
                facts = await self._call(self._api.inspect_container, self._container_id)
            except Exception:  # removed already: its end is not known
                return -1
            state = facts.get("State") or {}
            if not state.get("Running"):
                return int(state.get("ExitCode") or 0)
            if loop.time() >= deadline:
                return 0
            await asyncio.sleep(0.05)
