"""Container logs for the master, read from the runtime and sent back over the session.

The master asks for a pod's log on the node session (`LogRequest`, for `kubectl
logs` and `pinnace logs`); the agent finds the pod's container by its labels,
reads the engine's log (following it while the container runs, if asked) and
sends it back in chunks tagged with the request's id, then an end marker (with
an error sentence when it could not be read). A `LogCancel` (the client went
away) stops a follow. Each request is its own task, so a slow or endless log
never holds up heartbeats or pod work; at most MAX_STREAMS run at once.

`--previous` reads what PreviousLogs kept: when the worker replaces a crashed
container, the engine removes the dead one, so just before that the tail of its
log (at most PREVIOUS_MAX_BYTES) is copied into memory, replacing the one kept at
the restart before; a container started again in place keeps its log file, and the
tail up to that restart is copied just after it. The tradeoff: up to
PREVIOUS_MAX_CONTAINERS such tails in the agent's memory (a few MiB at most), the
cost of reading the tail at each restart (a crash loop is slowed by its back-off
anyway), and nothing survives an agent restart; timestamps and sinceSeconds are not
offered for a previous log. A container started again in place is reported running before
its dead run's tail is copied (the copy is not on the way to running), so a `--previous`
asked meanwhile waits for the copies under way (CAPTURE_WAIT_SECONDS at most): kubectl shows
restartCount 1 and the next `logs --previous` would otherwise find nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

from agent.runtime.port import ContainerInfo, LogOptions, Runtime, RuntimeFailure

log = logging.getLogger(__name__)

MAX_STREAMS = 32
PREVIOUS_MAX_BYTES = 256 * 1024
PREVIOUS_MAX_CONTAINERS = 64
# Read at most this many lines of a dead container's log (then cut to the bytes above).
PREVIOUS_TAIL_LINES = 5000
# How long a `--previous` waits for a dead run's log still being copied (two engine calls).
CAPTURE_WAIT_SECONDS = 5.0
# The largest piece sent in one message; the engine's own chunks are usually lines.
MAX_CHUNK = 64 * 1024

# (request id, data, end, error)
Send = Callable[[str, bytes, bool, str], None]


@dataclass(frozen=True, slots=True)
class LogOrder:
    request_id: str
    pod: str
    container: str
    options: LogOptions
    limit_bytes: int = 0
    previous: bool = False


def pick_container(containers: list[ContainerInfo], pod: str, name: str) -> ContainerInfo | str:
    """The pod's newest container of that name (any, when the name is empty), or why not."""
    mine = [c for c in containers if c.pod == pod]
    if not mine:
        return f"pod {pod} has no container on this node (not started yet, or already removed)"
    if name:
        mine = [c for c in mine if c.container == name]
        if not mine:
            return f"container {name} is not valid for pod {pod}"
    elif len({c.container for c in mine}) > 1:
        names = ", ".join(sorted({c.container for c in mine}))
        return f"a container name must be specified for pod {pod}, choose one of: [{names}]"
    return max(mine, key=lambda c: (c.restart_count, c.started_at))


@dataclass(frozen=True, slots=True)
class Kept:
    """The log tail of a container's last terminated run."""

    epoch: int
    restart_count: int
    data: bytes


def last_lines(data: bytes, tail_lines: int) -> bytes:
    """The last `tail_lines` lines (-1: all)."""
    if tail_lines < 0:
        return data
    if tail_lines == 0:
        return b""
    lines = data.splitlines(keepends=True)
    return b"".join(lines[-tail_lines:])


def keep_tail(data: bytes, limit: int = PREVIOUS_MAX_BYTES) -> bytes:
    """At most `limit` bytes from the end, starting at a line when one starts in them."""
    if len(data) <= limit:
        return data
    cut = data[-limit:]
    newline = cut.find(b"\n")
    return cut[newline + 1 :] if 0 <= newline < len(cut) - 1 else cut


class PreviousLogs:
    """Per (pod, container): the log tail of its last terminated run, for `--previous`."""

    def __init__(self, max_containers: int = PREVIOUS_MAX_CONTAINERS) -> None:
        self._kept: OrderedDict[tuple[str, str], Kept] = OrderedDict()
        self._max = max_containers
        # Copies of dead runs' tails under way (`start_capture`).
        self._capturing: set[asyncio.Future[None]] = set()

    def start_capture(
        self, runtime: Runtime, container_id: str, restart_count: int, until: float = 0.0
    ) -> asyncio.Future[None]:
        """`capture` as a task of its own, which `settled` waits for."""
        capture = asyncio.ensure_future(self.capture(runtime, container_id, restart_count, until))
        self._capturing.add(capture)
        capture.add_done_callback(self._capturing.discard)
        return capture

    async def settled(self, timeout: float = CAPTURE_WAIT_SECONDS) -> None:
        """Once the copies under way now are done (or `timeout` went by)."""
        if self._capturing:
            await asyncio.wait(set(self._capturing), timeout=timeout)

    def keep(self, pod: str, container: str, kept: Kept) -> None:
        self._kept[(pod, container)] = kept
        self._kept.move_to_end((pod, container))
        while len(self._kept) > self._max:
            self._kept.popitem(last=False)

    def find(self, current: ContainerInfo) -> Kept | None:
        """The previous run of `current`: same pod incarnation (epoch), an earlier run."""
        kept = self._kept.get((current.pod, current.container))
        if kept is None or kept.epoch != current.epoch:
            return None
        if kept.restart_count >= current.restart_count:
            return None
        return kept

    async def capture(
        self, runtime: Runtime, container_id: str, restart_count: int, until: float = 0.0
    ) -> None:
        """Copy a dead run's log tail before the engine removes it; best effort.
        `restart_count`: the dead run's count; `until`: for a container started again in
        place, the instant of that restart (the log before it is the dead run's)."""
        try:
            info = await runtime.inspect(container_id)
            if info is None:
                return
            options = LogOptions(tail_lines=PREVIOUS_TAIL_LINES, until=until)
            chunks = [chunk async for chunk in runtime.logs(container_id, options)]
        except Exception as e:  # a restart must never fail for want of an old log
            log.debug("could not keep the log of %s: %s", container_id[:12], e)
            return
        data = keep_tail(b"".join(chunks))
        self.keep(info.pod, info.container, Kept(info.epoch, restart_count, data))


class LogStreamer:
    def __init__(self, runtime: Runtime, previous: PreviousLogs | None = None) -> None:
        self._runtime = runtime
        self._previous = previous
        self._tasks: dict[str, asyncio.Task[None]] = {}

    def start(self, order: LogOrder, send: Send) -> None:
        if len(self._tasks) >= MAX_STREAMS:
            send(order.request_id, b"", True, f"too many log streams on this node (>{MAX_STREAMS})")
            return
        task = asyncio.create_task(self._stream(order, send), name=f"log-{order.request_id}")
        self._tasks[order.request_id] = task
        task.add_done_callback(lambda _: self._tasks.pop(order.request_id, None))

    def cancel(self, request_id: str) -> None:
        task = self._tasks.get(request_id)
        if task is not None:
            task.cancel()

    def cancel_all(self) -> None:
        """The session ended: its requests have nobody to answer."""
        for task in list(self._tasks.values()):
            task.cancel()

    async def _stream(self, order: LogOrder, send: Send) -> None:
        error = ""
        sent = 0
        try:
            found = pick_container(
                await self._runtime.list_containers(), order.pod, order.container
            )
            if isinstance(found, str):
                error = found
                return
            if order.previous:
                kept = None
                if self._previous is not None:
                    await self._previous.settled()
                    kept = self._previous.find(found)
                if kept is None:
                    error = (
                        f'previous terminated container "{found.container}" in pod '
                        f'"{order.pod}" not found'
                    )
                    return
                data = last_lines(kept.data, order.options.tail_lines)
                if order.limit_bytes:
                    data = data[: order.limit_bytes]
                for start in range(0, len(data), MAX_CHUNK):
                    send(order.request_id, data[start : start + MAX_CHUNK], False, "")
                return
            async for chunk in self._runtime.logs(found.id, order.options):
                for start in range(0, len(chunk), MAX_CHUNK):
                    piece = chunk[start : start + MAX_CHUNK]
                    if order.limit_bytes and sent + len(piece) > order.limit_bytes:
                        piece = piece[: order.limit_bytes - sent]
                    if piece:
                        send(order.request_id, piece, False, "")
                        sent += len(piece)
                    if order.limit_bytes and sent >= order.limit_bytes:
                        return
        except RuntimeFailure as e:
            error = str(e)
        except asyncio.CancelledError:
            return
        except Exception as e:  # an engine failure must end the stream, not the agent
            log.warning("log stream %s failed: %s", order.request_id, e)
            error = f"reading the log failed: {e}"
        finally:
            with contextlib.suppress(Exception):
                send(order.request_id, b"", True, error)
