"""A pod's image step seen from an engine thread: the create goes beside it, the start after.

Why: a `:latest` image is pulled on every start (imagePullPolicy Always, Kubernetes'
default for that tag), and where no registry answers the pull fails after 7-100 ms (by
load) and the node's own image is used. Run before the create, that pull was the agent's
largest part of `apply` -> 3 running (issue 15). The create does not need the pull's
verdict, only the start does: the container runs nothing until it is started. So the
worker hands the step (ensure_image, under way) to the runtime, whose engine thread creates
the container at once and waits here before starting it.

State flows one way: the step's task ends in the agent's event loop, its done callback
sets a threading.Event, and `wait` (in the engine thread) returns or raises the step's
error. `PullCounts` says whether a pull of the reference ended well after a create began
(a count taken before the create differs): only then may the reference name another image
than the one the container was made from, which the runtime then checks.
"""

from __future__ import annotations

import asyncio
import collections
import threading
from collections.abc import Awaitable

from agent.runtime.port import RuntimeFailure


class ImageGate:
    """`step` (made a task of the running loop) as an engine thread waits for it."""

    def __init__(self, step: Awaitable[object]) -> None:
        self._task = asyncio.ensure_future(step)
        self._ended = threading.Event()
        self._task.add_done_callback(self._end)

    def _end(self, task: asyncio.Future[object]) -> None:
        if not task.cancelled():
            task.exception()  # retrieved: a failure the thread never waited for is not logged
        self._ended.set()

    def wait(self) -> None:
        """Blocks until the step ended; raises its error (RuntimeFailure if cancelled).
        Never call it from the event loop's own thread: the step ends there."""
        self._ended.wait()
        if self._task.cancelled():
            raise RuntimeFailure("the image step was cancelled")
        error = self._task.exception()
        if error is not None:
            raise error


class PullCounts:
    """How many pulls of each image reference ended well, across threads."""

    def __init__(self) -> None:
        self._counts: collections.Counter[str] = collections.Counter()
        self._lock = threading.Lock()

    def pulled(self, image: str) -> None:
        with self._lock:
            self._counts[image] += 1

    def count(self, image: str) -> int:
        with self._lock:
            return self._counts[image]
