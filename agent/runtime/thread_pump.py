"""Blocking iterators of the Docker engine (events, logs, an exec's output) read on a thread.

docker-py's streams are endless blocking reads of an HTTP response: a read never returns
while the engine has nothing to say, so they cannot run on the event loop nor in the
runtime's thread pool (a follow would hold a pool thread forever and block interpreter
exit). Each gets a daemon thread that hands items to the loop through a queue; the loop
side yields them, and turns a failure of the stream into the runtime's own error.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import AsyncIterator, Callable, Iterable
from typing import TypeVar

T = TypeVar("T")


async def pumped(
    items: Iterable[T],
    thread_name: str,
    closed: threading.Event,
    broke: Callable[[BaseException], Exception],
) -> AsyncIterator[T]:
    """Yields what `items` gives, read on a daemon thread named `thread_name`.

    Set `closed` (and close the stream under `items`) to stop: the thread then stops at its
    next item, and a read that fails because the stream was closed is not an error.
    `broke(exc)` makes the exception raised when the stream fails while still wanted.
    """
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue[T | BaseException | None] = asyncio.Queue()

    def hand_over(item: T | BaseException | None) -> None:
        with contextlib.suppress(RuntimeError):  # the loop closed: nobody listens any more
            loop.call_soon_threadsafe(queue.put_nowait, item)

    def pump() -> None:
        try:
            for item in items:
                if closed.is_set():
                    break
                hand_over(item)
        except Exception as exc:
            if not closed.is_set():
                hand_over(exc)
        hand_over(None)

    threading.Thread(target=pump, name=thread_name, daemon=True).start()
    while True:
        item = await queue.get()
        if item is None:
            return
        if isinstance(item, BaseException):
            raise broke(item)
        yield item
