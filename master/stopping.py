"""The master's stop, bounded and explained: each stage timed, a stack dump if it hangs.

On SIGTERM the master stops in stages (master/server.py): the load balancer, the
controllers, the Kubernetes API, the gRPC server (every agent's session ends), the
background tasks, the last flush to the store. At 5,000 nodes it once did not exit
within 30 s of SIGTERM and nothing said where it was. Now:

- each stage is timed (`StopTimes`); the stages that took `SLOW_STAGE_SECONDS` or more
  are logged as one warning, so a slow stop names its stage;
- `STOP_DEADLINE_SECONDS` after the signal, if the process is still there, the stacks
  of all its threads are written to stderr (faulthandler, which needs no event loop:
  a loop stuck in a synchronous call is seen where it is stuck) and it exits with
  status 1, as a service manager's SIGKILL would end it, but with the reason shown;
- once the gRPC server has stopped, its calls' tasks are let finish (`finish_rpc_tasks`)
  before the loop closes, so asyncio.run's teardown cancels none of them mid-step.
"""

from __future__ import annotations

import asyncio
import contextlib
import faulthandler
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

# A stage this long is named in the stop's warning.
SLOW_STAGE_SECONDS = 1.0
# The longest a stop may take before the stacks are dumped and the process exits (below
# systemd's 90 s and the benches' 60 s, well above a healthy stop: ~1-3 s at 5,000 nodes).
STOP_DEADLINE_SECONDS = 30.0


class StopTimes:
    """How long each stage of a stop took, in order."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self.stages: list[tuple[str, float]] = []

    @contextlib.contextmanager
    def stage(self, name: str) -> Iterator[None]:
        started = self._clock()
        try:
            yield
        finally:
            self.stages.append((name, self._clock() - started))

    def total(self) -> float:
        return sum(seconds for _, seconds in self.stages)

    def slow(self, threshold: float = SLOW_STAGE_SECONDS) -> str:
        """One sentence naming the slow stages ("" when none was)."""
        slow = [(name, s) for name, s in self.stages if s >= threshold]
        if not slow:
            return ""
        parts = ", ".join(f"{name} {s:.1f}s" for name, s in slow)
        return f"stopping took {self.total():.1f}s: {parts}"


def arm_stop_deadline(seconds: float = STOP_DEADLINE_SECONDS) -> None:
    """From now on, `seconds` more at most: then every thread's stack goes to stderr and
    the process exits with status 1. (To the process's own stderr: a replaced sys.stderr
    may have no file descriptor; with none at all, the stop is not bounded.)"""
    stderr = sys.__stderr__
    if stderr is None:
        return
    with contextlib.suppress(AttributeError, OSError, ValueError):
        faulthandler.dump_traceback_later(seconds, exit=True, file=stderr)


def disarm_stop_deadline() -> None:
    faulthandler.cancel_dump_traceback_later()


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
