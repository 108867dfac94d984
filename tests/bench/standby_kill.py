"""The recovery bench's crash right after a standby is made (`--kill-at standby-made`).

The default trials (`--kill-at settled`) kill a pod's container only once its standby
holder runs and every agent's listing has shown it, so the worker decides the crash from a
listing that knows the standby. A crash in the second after the standby's start returned,
before the next listing, takes another path: the worker asks the runtime
(Runtime.standby_of, commit 973ee31), which knows a standby it made as soon as its start
returned. These trials measure that path: each one scales the bench's Deployment up by one
pod, waits for that pod's container to run and then for the engine's `start` event of its
standby holder (labelled `pinnace.sandbox-standby`), and kills the container at once.

One pod a trial: an agent makes its standbys one at a time once its engine work has been
quiet for a second (agent/runtime/sandbox.py, standby_due), and a kill makes it busy
again, so with all the pods applied at once most standbys would be made while an earlier
trial is still being timed. A pod killed once runs joined to its standby and wants no new
one; a standby start of a pod not yet killed is the new pod's.

The event is read off a stream opened before the trials (one reader thread); which event
is a trial's is decided by `standby_started`, a pure function.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Collection, Iterator
from dataclasses import dataclass
from typing import Any

from agent.runtime.port import LABEL_NODE, LABEL_POD, LABEL_STANDBY
from tests.bench.engine import BenchError


@dataclass(frozen=True, slots=True)
class StandbyStart:
    """One standby holder's start as the engine reported it."""

    pod: str
    node: str
    holder: str
    # The engine's own time of the event (epoch seconds).
    at: float


def standby_started(
    event: dict[str, Any], nodes: Collection[str], prefix: str, done: Collection[str]
) -> StandbyStart | None:
    """The standby start `event` (a decoded engine event) tells of, when it is a `start` of
    a standby holder on one of `nodes` for a pod named `prefix`... and not in `done` (the
    pods killed already, whose later standbys, if any, are not a new trial's); else None."""
    if event.get("Type") != "container" or event.get("Action") != "start":
        return None
    attributes = (event.get("Actor") or {}).get("Attributes") or {}
    pod = str(attributes.get(LABEL_POD, ""))
    node = str(attributes.get(LABEL_NODE, ""))
    if LABEL_STANDBY not in attributes or node not in nodes:
        return None
    if not pod.startswith(prefix) or pod in done:
        return None
    holder = str((event.get("Actor") or {}).get("ID") or event.get("id") or "")
    return StandbyStart(pod, node, holder, int(event.get("timeNano", 0)) / 1e9)


class StandbyStarts:
    """Every standby holder start the engine reports from its opening on, kept in order
    by a reader thread; `wait` takes the first that a trial asks for."""

    def __init__(self, api: Any) -> None:
        self._stream = api.events(
            decode=True,
            since=time.time(),
            filters={"type": ["container"], "event": ["start"], "label": [LABEL_STANDBY]},
        )
        self._events: list[dict[str, Any]] = []
        self._changed = threading.Condition()
        self._thread = threading.Thread(target=self._read, args=(self._stream,), daemon=True)
        self._thread.start()

    def _read(self, events: Iterator[dict[str, Any]]) -> None:
        try:
            for event in events:
                with self._changed:
                    self._events.append(event)
                    self._changed.notify_all()
        except Exception:  # the stream closed under us (close): nothing more to read
            return

    def wait(
        self, nodes: Collection[str], prefix: str, done: Collection[str], timeout: float
    ) -> StandbyStart:
        """The first standby start seen (from the stream's opening) that `standby_started`
        takes; BenchError after `timeout` seconds."""
        deadline = time.monotonic() + timeout
        with self._changed:
            while True:
                for event in self._events:
                    found = standby_started(event, nodes, prefix, done)
                    if found is not None:
                        return found
                left = deadline - time.monotonic()
                if left <= 0:
                    raise BenchError(f"no standby of a new {prefix}* pod started in {timeout:g} s")
                self._changed.wait(left)

    def close(self) -> None:
        self._stream.close()
        self._thread.join(timeout=5)
