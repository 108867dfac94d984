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
- once the gRPC server has stopped, its calls' tasks are let finish
  (kernel/rpc_tasks.py `finish_rpc_tasks`, shared with the agent's witness server) before
  the loop closes, so asyncio.run's teardown cancels none of them mid-step.
"""

from __future__ import annotations

import contextlib
import faulthandler
import sys
import time
from collections.abc import Callable, Iterator

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
