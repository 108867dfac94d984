"""One call in flight per key: callers that ask for the same key meanwhile share its result.

Thirty pods of one Deployment land on a node at once, and each asks for its image
(`imagePullPolicy: Always` for a `:latest` tag, as Kubernetes defaults it). Thirty pulls of
the same reference answer the same question -- which digest the name means now -- and, sent
together, they queue in the engine behind each other (measured: the last pods of a burst
started five seconds after the first, their pulls waiting on registry lookups). The first
caller's pull answers every caller that asked while it ran; a caller that arrives after it
finished starts a fresh one, so no answer is older than the ask.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Hashable
from typing import Generic, TypeVar

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


class SingleFlight(Generic[K, V]):
    def __init__(self) -> None:
        self._running: dict[K, asyncio.Task[V]] = {}

    async def run(self, key: K, call: Callable[[], Awaitable[V]]) -> V:
        """`call()`'s result, or that of the call for `key` already running (its error too)."""
        task = self._running.get(key)
        if task is None:
            task = asyncio.get_running_loop().create_task(self._own(call))
            self._running[key] = task
            task.add_done_callback(lambda done: self._forget(key, done))
        # shield: one caller cancelled (its pod removed) does not cancel the others' pull.
        return await asyncio.shield(task)

    @staticmethod
    async def _own(call: Callable[[], Awaitable[V]]) -> V:
        return await call()

    def _forget(self, key: K, done: asyncio.Task[V]) -> None:
        if self._running.get(key) is done:
            del self._running[key]
        if not done.cancelled():
            done.exception()  # retrieved here, so a failure no caller awaited is not logged

    @property
    def in_flight(self) -> int:
        return len(self._running)
