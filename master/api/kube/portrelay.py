"""One forwarded connection to a pod's port, relayed over the pod's node session.

Shared by the two framings the API serves (master/api/kube/portforward.py: kubectl's SPDY
in a WebSocket; portforward_ws.py: the channel WebSocket of the Python client). Each
connection becomes an ExecStart with `port` to the pod's agent (master/api/exec.py,
agent/port_forward.py): the client's bytes go down as stdin, paced by the agent's window;
the pod's come back as outputs, acknowledged every ACK_EVERY so the agent sends ahead by a
bounded amount.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from master.api.exec import ExecChannel, ExecRelay, ExecUnavailable, Exited

# Pieces of one connection's input waiting to go down to the agent.
INPUT_QUEUE = 16
# Acknowledge outputs to the agent every this many (its window is agent/exec.py's).
ACK_EVERY = 4
END = b""  # the client's half-close, in a connection's input


def parse_port(text: str) -> int | str:
    """A port the client named (a header, a query) -> the port, or why it is not one."""
    if not text.isdigit() or not 0 < int(text) < 65536:
        return f"invalid port {text[:20]!r}: a TCP port number (1-65535) is required"
    return int(text)


@dataclass(slots=True)
class Forwarded:
    """One forwarded connection to a pod's port, whatever the client's framing."""

    port: int | str  # or why the client's port is not one
    input: asyncio.Queue[bytes] = field(default_factory=lambda: asyncio.Queue(INPUT_QUEUE))
    task: asyncio.Task[None] | None = None
    channel: ExecChannel | None = None
    reset: bool = False  # the client dropped it: nothing more is sent to it

    def client_gone(self) -> None:
        self.reset = True
        if self.channel is not None and not self.channel.ended:
            self.channel.client_gone()


@dataclass(frozen=True, slots=True)
class PodTarget:
    relay: ExecRelay
    node: str
    pod: str
    namespace: str


async def relay_port(
    target: PodTarget, conn: Forwarded, send: Callable[[bytes], Awaitable[None]]
) -> str:
    """Relay one connection over the pod's node session until either side ends it: the
    client's bytes (conn.input, _END for its half-close) down, the pod's to `send`.
    Returns why it failed, "" when it simply ended."""
    if isinstance(conn.port, str):
        return conn.port
    try:
        channel = target.relay.open(
            target.node, target.pod, "", [], False, False,
            namespace=target.namespace, port=conn.port,
        )  # fmt: skip
    except ExecUnavailable as e:
        return str(e)
    conn.channel = channel
    pump = asyncio.create_task(_pump_input(conn.input, channel))
    try:
        passed = 0
        while True:
            event = await channel.next()
            if isinstance(event, Exited):
                return event.error if event.error and not conn.reset else ""
            if not conn.reset:
                await send(event.data)
            passed += 1
            if passed % ACK_EVERY == 0:
                channel.passed_on(passed)
    finally:
        pump.cancel()
        while not conn.input.empty():  # a reader blocked on a full queue goes on
            conn.input.get_nowait()
        channel.close()


async def _pump_input(queue: asyncio.Queue[bytes], channel: ExecChannel) -> None:
    """The client's bytes down to the agent, in order; its half-close after them."""
    while True:
        data = await queue.get()
        if data == END:
            channel.close_stdin()
            return
        await channel.stdin(data)
