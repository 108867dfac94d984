"""Assignment epochs: the number an agent uses to tell a fresh assignment from a stale one.

Every binding of a pod to a node gets a new epoch, strictly greater than every
epoch issued before — also by an earlier master process on the same store. The
counter starts above the store's resource version and above every stored pod's
epoch: each epoch issued is written with its pod, and every write raises the
resource version, so the stored high-water mark is never below an issued epoch.
Agents compare epochs only for equality and order; gaps do not matter.
"""

from __future__ import annotations

from collections.abc import Iterable

from master.model import Pod


class AssignmentEpochs:
    """Issues strictly increasing assignment epochs."""

    def __init__(self, resource_version: int, pods: Iterable[Pod]) -> None:
        self._last = max([resource_version, *(p.epoch for p in pods)])

    def next(self) -> int:
        self._last += 1
        return self._last
