"""One call in flight per key: callers that ask for the same key meanwhile share its result.

Thirty pods of one Deployment land on a node at once, and each asks for its image
(`imagePullPolicy: Always` for a `:latest` tag, as Kubernetes defaults it). Thirty pulls of
the same reference answer the same question -- which digest the name means now -- and, sent
together, they queue in the engine behind each other (measured: the last pods of a burst
started five seconds after the first, their pulls waiting on registry lookups). The first
caller's pull answers every caller that asked while it ran; a caller that arrives after it
finished starts a fresh one, so no answer is older than the ask.

`ThreadSingleFlight` is the same for calls made on the runtime's engine threads: removals of
a container. The agent removes containers from several places at once (the listing's sweep,
the sweep after a holder died, the worker's removal, a replacement's). The second caller
waits for the first's removal and shares its outcome instead of sending its own: the engine
would answer it 409 after queueing it. (Two removals together were first blamed for a ghost
container "Removal In Progress"; measured, they leave none: a rename meeting a removal does,
see keyed_lock.py.)
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Awaitable, Callable, Hashable
from concurrent.futures import Future
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


class ThreadSingleFlight(Generic[K, V]):
    """SingleFlight for blocking calls on threads: one call per key runs at a time, and the
    threads asking for that key meanwhile wait for it and get its result (or its error)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._running: dict[K, Future[V]] = {}
        self._waiting = 0

    def run(self, key: K, call: Callable[[], V]) -> V:
        with self._lock:
            running = self._running.get(key)
            if running is None:
                mine: Future[V] = Future()
                self._running[key] = mine
            else:
                self._waiting += 1
        if running is not None:
            try:
                return running.result()
            finally:
                with self._lock:
                    self._waiting -= 1
        try:
            result = call()
        except BaseException as exc:
            self._forget(key)
            mine.set_exception(exc)
            raise
        self._forget(key)
        mine.set_result(result)
        return result

    def _forget(self, key: K) -> None:
        # Before the outcome is set: a caller that asks after the end starts a call of its own.
        with self._lock:
            del self._running[key]

    @property
    def in_flight(self) -> int:
        with self._lock:
            return len(self._running)

    @property
    def waiting(self) -> int:
        """Callers waiting for another's call of their key."""
        with self._lock:
            return self._waiting
