"""The pod status reports waiting to go to the master: only what changed is sent.

The worker replaces the whole current set after every sync (`update`); the
session drains the reports that differ from what the master last received
(`take_changed`, about every 100 ms, one batch) and, on every (re)registration,
takes a `snapshot` of everything, which the master then holds. A pod that leaves
the current set is forgotten, so it is reported afresh should it come back.
"""

from __future__ import annotations

from collections.abc import Iterable

from agent.model import PodStatusReport


class StatusOutbox:
    def __init__(self) -> None:
        self._current: dict[str, PodStatusReport] = {}
        self._sent: dict[str, PodStatusReport] = {}

    def update(self, reports: Iterable[PodStatusReport]) -> None:
        self._current = {r.pod_name: r for r in reports}
        for gone in set(self._sent) - set(self._current):
            del self._sent[gone]

    def take_changed(self) -> list[PodStatusReport]:
        changed = [r for name, r in sorted(self._current.items()) if self._sent.get(name) != r]
        for r in changed:
            self._sent[r.pod_name] = r
        return changed

    def snapshot(self) -> list[PodStatusReport]:
        """Every current report, all counted as sent (the registration carries them)."""
        self._sent = dict(self._current)
        return [r for _, r in sorted(self._current.items())]
