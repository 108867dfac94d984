"""Watching the master's background tasks: a loop that dies takes the master down.

The controllers, the store flusher and the load balancer run as asyncio tasks
beside the gRPC server. If one of them ends — it raised, or returned when it
never should — the master would keep answering calls while nothing reconciles
any more. `supervise` waits for the stop signal or the first task to end, and
turns a task's end into `TaskDied`, which `pinnace master` reports as one
sentence naming the task and the cause before exiting with status 1 (a service
manager then restarts it, and a restarted master loses nothing).
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence


class TaskDied(Exception):
    """A background task ended while the master was running."""

    def __init__(self, name: str, cause: BaseException | None) -> None:
        why = f"{type(cause).__name__}: {cause}" if cause is not None else "it returned"
        super().__init__(f"the {name} task stopped ({why}); the master cannot go on without it")
        self.name = name
        self.cause = cause


async def supervise(tasks: Sequence[asyncio.Task[None]], stop: asyncio.Event) -> None:
    """Return once `stop` is set; raise TaskDied as soon as any task ends first."""
    stopper = asyncio.create_task(stop.wait(), name="stop-signal")
    try:
        done, _ = await asyncio.wait([*tasks, stopper], return_when=asyncio.FIRST_COMPLETED)
    finally:
        stopper.cancel()
    for task in tasks:
        if task in done:
            cause = None if task.cancelled() else task.exception()
            raise TaskDied(task.get_name(), cause)
