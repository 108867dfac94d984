"""A TCP connection to a pod's port for the master (`kubectl port-forward`).

The master asks with an ExecStart carrying `port` (agent/exec.py runs it like a
command: stdin down, stdout up, the end reported). Where the agent connects is
where its probes go (agent/probes.py): the pod's container at its own address
and the port itself when the runtime says the agent can reach it there (a pod
network, or Docker's bridge seen from the host), else the host port that
container port is published on, at the node's advertise address. A port neither
reachable nor published is refused with a sentence that says how to fix it.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Sequence

from agent.logs import MAX_CHUNK
from agent.runtime.port import STDOUT, ContainerInfo, RuntimeFailure

CONNECT_TIMEOUT_S = 10.0


def forward_target(
    containers: Sequence[ContainerInfo], pod: str, port: int, host_ip: str
) -> tuple[str, int] | str:
    """(host, port) to connect to for `port` of `pod` (a pod_ref), or why not."""
    mine = [c for c in containers if c.pod == pod and c.alive]
    if not mine:
        return f"pod {pod} has no running container on this node"
    if not 0 < port < 65536:
        return f"port {port} is not a TCP port number (1-65535)"
    key = f"{port}/TCP"
    # The container that declares the port first, then any reachable at its own address.
    ordered = sorted(mine, key=lambda c: key not in c.ports)
    for c in ordered:
        if c.probe_address:
            return c.probe_address, port
        published = c.ports.get(key)
        if published:
            reached = {"0.0.0.0": "127.0.0.1", "::": "::1", "": "127.0.0.1"}.get(host_ip, host_ip)
            return reached, published
    return (
        f"port {port} of pod {pod} cannot be reached from its node: pods here are reached "
        f"through published ports; declare it in the container's ports (containerPort: {port})"
    )


class TcpSession:
    """A TCP connection seen as an ExecSession: its bytes are stdout, stdin is written to it."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._reader = reader
        self._writer = writer

    @classmethod
    async def connect(cls, host: str, port: int, what: str) -> TcpSession:
        """Connect to `host`:`port`; `what` names the target for the error sentence."""
        why = ""
        try:
            async with asyncio.timeout(CONNECT_TIMEOUT_S):
                reader, writer = await asyncio.open_connection(host, port)
        except ConnectionRefusedError:
            why = "connection refused (nothing listens there)"
        except TimeoutError:
            why = f"no answer in {CONNECT_TIMEOUT_S:g}s"
        except OSError as e:
            why = str(e.strerror or e)
        if why:
            raise RuntimeFailure(f"cannot connect to {what} ({host}:{port}): {why}")
        return cls(reader, writer)

    async def output(self) -> AsyncIterator[tuple[int, bytes]]:
        while True:
            try:
                data = await self._reader.read(MAX_CHUNK)
            except OSError as e:
                raise RuntimeFailure(f"the connection to the pod broke: {e}") from None
            if not data:
                return
            yield STDOUT, data

    async def write(self, data: bytes) -> None:
        try:
            self._writer.write(data)
            await self._writer.drain()
        except OSError as e:
            raise RuntimeFailure(f"cannot write to the pod's port: {e}") from None

    async def close_stdin(self) -> None:
        with contextlib.suppress(OSError):
            if self._writer.can_write_eof():
                self._writer.write_eof()

    async def resize(self, width: int, height: int) -> None:
        return None

    async def exit_code(self) -> int:
        return 0

    async def close(self) -> None:
        self._writer.close()
        with contextlib.suppress(OSError):
            await self._writer.wait_closed()
