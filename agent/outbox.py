"""The pod status reports waiting to go to the master: only what changed is sent.

The worker replaces the whole current set after every sync (`update`); the
session drains the reports that differ from what the master last received
(`take_changed`, one batch: at once when the last batch went FLUSH_INTERVAL or more
ago, else when that interval is up, see `flush_pause`) and, on every (re)registration
and whenever the master asks for every report again (it reloaded its memory from its
store and lost what it had not stored), takes a `snapshot` of everything, which the
master then holds. A pod that leaves
the current set is forgotten, so it is reported afresh should it come back.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

from agent.model import PodStatusReport

# The least time between two batches of reports (a burst of changes goes as one batch).
FLUSH_INTERVAL = 0.1


def flush_pause(now: float, last_batch: float, interval: float = FLUSH_INTERVAL) -> float:
    """How long to hold changed reports before sending them: none after a quiet spell (a
    crashed container's running again goes at once), the rest of `interval` after the
    last batch (monotonic seconds)."""
    return max(0.0, last_batch + interval - now)


class StatusOutbox:
    def __init__(self) -> None:
        self._current: dict[str, PodStatusReport] = {}
        self._sent: dict[str, PodStatusReport] = {}
        self._on_update: Callable[[], None] | None = None

    def on_update(self, wake: Callable[[], None]) -> None:
        """`wake()` is called after every update (the session's sender waits on it)."""
        self._on_update = wake

    def update(self, reports: Iterable[PodStatusReport]) -> None:
        self._current = {r.pod_name: r for r in reports}
        for gone in set(self._sent) - set(self._current):
            del self._sent[gone]
        if self._on_update is not None:
            self._on_update()

    def take_changed(self) -> list[PodStatusReport]:
        changed = [r for name, r in sorted(self._current.items()) if self._sent.get(name) != r]
        for r in changed:
            self._sent[r.pod_name] = r
        return changed

    def snapshot(self) -> list[PodStatusReport]:
        """Every current report, all counted as sent (the registration carries them)."""
        self._sent = dict(self._current)
        return [r for _, r in sorted(self._current.items())]
