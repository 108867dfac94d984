"""Commands run in a pod's container for the master (`kubectl exec`, `pinnace exec`).

The master sends an `ExecStart` on the node session; the agent finds the pod's
running container (the rules of agent/logs.py), starts the command through the
runtime with its streams attached, and sends the output back as `ExecOutput`s
tagged with the request's id, then one with `end` and the exit code (or an error
sentence when it could not run). `ExecInput`s carry stdin, its end, terminal
resizes, and a cancel when the client went away. Each exec is its own task, so a
long interactive shell never holds up heartbeats or pod work; at most MAX_EXECS
run at once, and input for each waits in a bounded queue: the agent reports how
many stdin pieces it has written (`input_done`) and the master sends no more than a
window ahead of that, so the queue only overflows for a master that ignores it (the
exec then ends with an error rather than buffering without bound).

The same machinery carries `kubectl port-forward` (an order with a `port`: a TCP
connection to the pod, agent/port_forward.py) and `kubectl attach` (an order with
`attach`: the container's main process, through the runtime's attach). A
port-forward's output is paced too: the master reports how many output messages
it has passed on (`output_done`) and the agent reads no further from the pod than
OUTPUT_WINDOW messages ahead, so a large download runs at the client's speed
instead of piling up in the master.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from dataclasses import dataclass

from agent.logs import MAX_CHUNK, pick_container
from agent.port_forward import TcpSession, forward_target
from agent.runtime.port import ExecSession, Runtime, RuntimeFailure

log = logging.getLogger(__name__)

MAX_EXECS = 32
# Input messages waiting to be written to one command's stdin.
MAX_PENDING_INPUT = 256
# Output messages of a port-forward sent and not yet passed on by the master.
OUTPUT_WINDOW = 16

# (request id, stream, data, end, exit code, error, stdin pieces written so far)
Send = Callable[[str, int, bytes, bool, int, str, int], None]


@dataclass(frozen=True, slots=True)
class ExecOrder:
    request_id: str
    pod: str
    container: str
    command: tuple[str, ...]
    stdin: bool = False
    tty: bool = False
    width: int = 0
    height: int = 0
    # > 0: a TCP connection to this port of the pod instead of a command (port-forward).
    port: int = 0
    # The container's main process instead of a command (attach).
    attach: bool = False


@dataclass(frozen=True, slots=True)
class ExecInput:
    """One message for a running exec: stdin bytes, stdin's end, a resize, or a cancel."""

    request_id: str
    data: bytes = b""
    close_stdin: bool = False
    width: int = 0
    height: int = 0
    cancel: bool = False
    # Output messages the master has passed on so far (port-forwards are paced by it).
    output_done: int = 0


class OutputWindow:
    """At most OUTPUT_WINDOW output messages ahead of what the master passed on."""

    def __init__(self) -> None:
        self.sent = 0
        self._done = 0
        self._room = asyncio.Event()
        self._room.set()

    def passed_on(self, count: int) -> None:
        self._done = max(self._done, count)
        self._room.set()

    async def wait_for_room(self) -> None:
        while self.sent - self._done >= OUTPUT_WINDOW:
            self._room.clear()
            await self._room.wait()

    @property
    def waiting(self) -> bool:
        """Whether the reader is held here for the master to pass output on: while it is,
        nothing more is read from the pod (a test sees the hold itself, not a quiet spell)."""
        return not self._room.is_set()


class ExecRunner:
    def __init__(self, runtime: Runtime, host_ip: str = "127.0.0.1") -> None:
        self._runtime = runtime
        # Where published pod ports are reached (the node's advertise address).
        self._host_ip = host_ip
        self._windows: dict[str, OutputWindow] = {}
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self._inputs: dict[str, asyncio.Queue[ExecInput]] = {}
        # Where each running exec's output goes (an overrun is reported from here).
        self._sends: dict[str, Send] = {}

    def start(self, order: ExecOrder, send: Send) -> None:
        if not order.command and not order.port and not order.attach:
            send(order.request_id, 0, b"", True, 0, "you must specify at least one command", 0)
            return
        if len(self._tasks) >= MAX_EXECS or order.request_id in self._tasks:
            send(
                order.request_id, 0, b"", True, 0, f"too many execs on this node (>{MAX_EXECS})", 0
            )
            return
        inputs: asyncio.Queue[ExecInput] = asyncio.Queue(MAX_PENDING_INPUT)
        self._inputs[order.request_id] = inputs
        self._sends[order.request_id] = send
        window = OutputWindow() if order.port > 0 else None
        if window is not None:
            self._windows[order.request_id] = window
        task = asyncio.create_task(
            self._run(order, inputs, send, window), name=f"exec-{order.request_id}"
        )
        self._tasks[order.request_id] = task

        def forget(_: object) -> None:
            self._tasks.pop(order.request_id, None)
            self._inputs.pop(order.request_id, None)
            self._sends.pop(order.request_id, None)
            self._windows.pop(order.request_id, None)

        task.add_done_callback(forget)

    def input(self, message: ExecInput) -> None:
        task = self._tasks.get(message.request_id)
        if task is None:
            return
        if message.cancel:
            task.cancel()
            return
        window = self._windows.get(message.request_id)
        if message.output_done and window is not None:
            window.passed_on(message.output_done)
        if not (message.data or message.close_stdin or message.width or message.height):
            return
        try:
            self._inputs[message.request_id].put_nowait(message)
        except asyncio.QueueFull:
            # A client writing faster than the command reads: cut off, not buffered.
            log.warning("exec %s: stdin overran its buffer; cut off", message.request_id)
            why = "the command's stdin overran the agent's buffer; cut off"
            with contextlib.suppress(Exception):
                self._sends[message.request_id](message.request_id, 0, b"", True, 0, why, 0)
            task.cancel()

    def cancel_all(self) -> None:
        """The session ended: its execs have nobody to answer."""
        for task in list(self._tasks.values()):
            task.cancel()

    async def _open(self, order: ExecOrder) -> ExecSession | str:
        """The session an order asks for, or why it cannot be had."""
        containers = [c for c in await self._runtime.list_containers() if c.alive]
        if order.port > 0:
            target = forward_target(containers, order.pod, order.port, self._host_ip)
            if isinstance(target, str):
                return target
            return await TcpSession.connect(*target, f"port {order.port} of pod {order.pod}")
        found = pick_container(containers, order.pod, order.container)
        if isinstance(found, str):
            return found.replace("has no container", "has no running container")
        if order.attach:
            return await self._runtime.open_attach(found.id, order.stdin, order.tty)
        return await self._runtime.open_exec(found.id, order.command, order.stdin, order.tty)

    async def _run(
        self,
        order: ExecOrder,
        inputs: asyncio.Queue[ExecInput],
        send: Send,
        window: OutputWindow | None = None,
    ) -> None:
        error = ""
        code = 0
        session: ExecSession | None = None
        feeder: asyncio.Task[None] | None = None
        cancelled = False
        try:
            opened = await self._open(order)
            if isinstance(opened, str):
                error = opened
                return
            session = opened
            if order.tty and order.width > 0 and order.height > 0:
                await session.resize(order.width, order.height)
            feeder = asyncio.create_task(
                _feed(session, inputs, lambda n: send(order.request_id, 0, b"", False, 0, "", n))
            )
            async for stream, data in session.output():
                for start in range(0, len(data), MAX_CHUNK):
                    piece = data[start : start + MAX_CHUNK]
                    if window is not None:
                        await window.wait_for_room()
                        window.sent += 1
                    send(order.request_id, stream, piece, False, 0, "", 0)
            code = await session.exit_code()
        except RuntimeFailure as e:
            error = str(e)
        except asyncio.CancelledError:
            # The master stopped listening, or an overrun was already reported.
            cancelled = True
        except Exception as e:  # an engine failure must end the exec, not the agent
            log.warning("exec %s failed: %s", order.request_id, e)
            error = f"running the command failed: {e}"
        finally:
            if feeder is not None:
                feeder.cancel()
            if session is not None:
                with contextlib.suppress(Exception):
                    await session.close()
            if not cancelled:
                with contextlib.suppress(Exception):
                    send(order.request_id, 0, b"", True, code, error, 0)


async def _feed(
    session: ExecSession, inputs: asyncio.Queue[ExecInput], written: Callable[[int], None]
) -> None:
    """Stdin and resizes, in the order the client sent them; `written` counts stdin."""
    done = 0
    while True:
        message = await inputs.get()
        if message.width > 0 and message.height > 0:
            await session.resize(message.width, message.height)
        if message.data:
            with contextlib.suppress(RuntimeFailure):  # the command stopped reading
                await session.write(message.data)
            done += 1
            written(done)
        if message.close_stdin:
            await session.close_stdin()
