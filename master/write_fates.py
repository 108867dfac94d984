"""What happened to queued changes that never became durable: what a flush's waiters are told.

ClusterState writes changes in batches (group commit): a caller of `flush()` waits while
another caller's batch, which may carry its change, is written. Two things can befall such
a batch without the waiter being the one who wrote it:

- "unknown": the store neither confirmed nor refused it (OutcomeUnknown: etcd may commit it
  once its quorum returns). The writer hears so; a waiter whose change rode along must hear
  the same, not the "nothing was changed" of the refusals that follow while the master
  settles (a lie if the batch landed).
- "dropped": memory was made equal to the store (ClusterState.replace_all: a reload after a
  write in doubt, a leader resuming or deposed) while the change was still queued. The
  change is gone from memory and not in the store; a waiter must not then find its flush
  "done" (the emptied queue counts as written) and acknowledge a change that was lost.

Changes carry resource versions, so a batch is the range (durable_before, rv] and a waiter's
changes lie in (durable when it began waiting, its target]. A waiter asks for the fates
recorded since it began (`mark`) whose range meets its own; "unknown" outranks "dropped" (the
dropped queue of a reload after a write in doubt holds that write's changes).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Fate = Literal["unknown", "dropped"]

# Fates kept: a waiter looks only at those recorded since it began, so this bounds how many
# such events may happen while one flush waits (they are rare: a store in doubt, a reload).
KEPT = 256


@dataclass(frozen=True, slots=True)
class _Record:
    seq: int
    low: int  # exclusive
    high: int  # inclusive
    fate: Fate


class WriteFates:
    def __init__(self) -> None:
        self._records: list[_Record] = []
        self._seq = 0

    def mark(self) -> int:
        """Where a waiter begins: it is told only of what is recorded after this."""
        return self._seq

    def record(self, low: int, high: int, fate: Fate) -> None:
        """The changes with resource versions in (low, high] met `fate`."""
        if high <= low:
            return
        self._seq += 1
        self._records.append(_Record(self._seq, low, high, fate))
        if len(self._records) > KEPT:
            del self._records[: len(self._records) - KEPT]

    def since(self, mark: int, low: int, high: int) -> Fate | None:
        """The worst fate recorded after `mark` of a range meeting (low, high], if any.

        A waiter that began more than KEPT records ago is told "unknown": what befell its
        changes was forgotten, and "may or may not have been saved" is the one true answer."""
        if self._records and self._records[0].seq > mark + 1:
            return "unknown" if high > low else None
        worst: Fate | None = None
        for rec in self._records:
            if rec.seq <= mark or rec.high <= low or rec.low >= high:
                continue
            if rec.fate == "unknown":
                return "unknown"
            worst = "dropped"
        return worst
