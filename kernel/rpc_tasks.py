"""A stopped grpc.aio server's calls' tasks, let finish before the event loop closes.

Both the master (its gRPC API, master/server.py) and the agent (its witness server,
agent/witness.py) stop a grpc.aio server on SIGTERM and then return from the coroutine
asyncio.run is running. grpc.aio runs each call as two tasks and `server.stop()` returns
before they have ended; a handler whose cleanup ends in the loop's last turn leaves its
second task to asyncio.run's teardown, which cancels it and gRPC logs "Exception not
handled by _handle_exceptions ... CancelledError" with a traceback at every such stop.
`finish_rpc_tasks`, called right after `server.stop()`, waits for those tasks (bounded),
cancelling the handlers still running after the wait as gRPC cancels a cancelled call's.
Only asyncio is used: the tasks are found by the names gRPC gives them.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

# grpc.aio (1.85, grpc/_cython/_cygrpc/aio/server.pyx.pxi) runs each call as two tasks:
# the handler ("HandleExceptions[<method>]") and "rpc_task" (_schedule_rpc_coro), which
# awaits the handler and, when that await raises, logs "Exception not handled by
# _handle_exceptions" with the traceback. `server.stop()` returns once gRPC's core has
# ended every call, not once those tasks have: a handler still in its cleanup (a
# StreamSession ending: its reader awaited, its node's session marked) ends a turn or more
# later, and its rpc_task one turn after it. asyncio.run cancels whatever is left when
# `serve` returns; an rpc_task cancelled in the turn between its handler's end and its own
# takes the cancellation at that await and prints a CancelledError traceback (six at one
# SIGTERM after a 5,000-node run, when thousands of sessions were ending at once).
RPC_TASK_NAME = "rpc_task"
HANDLER_TASK_PREFIX = "HandleExceptions["
# How long the calls' tasks may take to end after the server stopped, and how long the
# handlers still running then may take to end once cancelled (as gRPC cancels the
# handler of a call its client cancelled: `_handle_exceptions` takes that as the call's
# end, and nothing is printed).
RPC_TASKS_WAIT_SECONDS = 3.0
CANCELLED_HANDLERS_WAIT_SECONDS = 1.0


def _running(named: Callable[[str], bool]) -> set[asyncio.Task[Any]]:
    current = asyncio.current_task()
    return {
        t for t in asyncio.all_tasks() if t is not current and not t.done() and named(t.get_name())
    }


def _rpc_tasks() -> set[asyncio.Task[Any]]:
    return _running(lambda name: name == RPC_TASK_NAME)


@dataclass(frozen=True, slots=True)
class RpcTasksEnd:
    """What `finish_rpc_tasks` found: the calls' tasks still running when the server had
    stopped, the handlers it cancelled after the wait, and the tasks left after all."""

    running: int
    cancelled: int
    left: int


async def finish_rpc_tasks(
    wait: float = RPC_TASKS_WAIT_SECONDS, then: float = CANCELLED_HANDLERS_WAIT_SECONDS
) -> RpcTasksEnd:
    """After `server.stop()`: waits up to `wait` seconds for the stopped server's calls'
    tasks to end; cancels the handlers still running then and waits up to `then` more."""
    tasks = _rpc_tasks()
    running = len(tasks)
    if tasks:
        await asyncio.wait(tasks, timeout=wait)
    stragglers = _running(lambda name: name.startswith(HANDLER_TASK_PREFIX))
    for task in stragglers:
        task.cancel()
    tasks = _rpc_tasks()
    if tasks:
        await asyncio.wait(tasks, timeout=then)
    return RpcTasksEnd(running, len(stragglers), len(_rpc_tasks()))
