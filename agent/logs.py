"""Container logs for the master, read from the runtime and sent back over the session.

The master asks for a pod's log on the node session (`LogRequest`, for `kubectl
logs` and `pinnace logs`); the agent finds the pod's container by its labels,
reads the engine's log (following it while the container runs, if asked) and
sends it back in chunks tagged with the request's id, then an end marker (with
an error sentence when it could not be read). A `LogCancel` (the client went
away) stops a follow. Each request is its own task, so a slow or endless log
never holds up heartbeats or pod work; at most MAX_STREAMS run at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from dataclasses import dataclass

from agent.runtime.port import ContainerInfo, LogOptions, Runtime, RuntimeFailure

log = logging.getLogger(__name__)

MAX_STREAMS = 32
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


class LogStreamer:
    def __init__(self, runtime: Runtime) -> None:
        self._runtime = runtime
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
