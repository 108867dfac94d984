"""The Store port: durable write-through persistence for the master's objects.

The master keeps every object in memory (master/state.py) and serves all reads
from there; the store only has to survive a restart. So the port is small: load
everything once at start, then write batches. A batch is the unit of work: the
master collects changes (user writes, and pod status from agents at thousands a
second) and flushes them every ~50 ms as ONE transaction, so either the whole
batch is durable or none of it is.

Implementations: SqliteStore (master/store/sqlite.py, the real one) and
MemoryStore (master/store/memory.py, for tests). Both pass the same contract
suite (tests/unit/test_store_contract.py).

Calls are blocking; the master makes them through `asyncio.to_thread`, so an
implementation must tolerate being called from different threads (one at a
time is enough).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Protocol

from master.model import StoredObject

# (kind, key name): ("Pod", "default/web-7d9f-x2k4q") for namespaced kinds, ("Node",
# "node-1") for cluster-scoped ones (master.model.key_name); keys are unique per kind.
ObjectKey = tuple[str, str]


class StoreError(Exception):
    """The store cannot do what was asked; the message is one sentence for the operator
    (data directory not writable, file is not a pinnace database, newer schema ...)."""


class OutcomeUnknown(StoreError):
    """The store did not confirm a write and cannot say it was not made (etcd proposed the
    transaction but answered neither way in time: it may still be committed once its
    quorum returns). Unlike any other StoreError, "nothing was changed" would be a lie."""


class WriteConflict(StoreError):
    """Another writer changed a key since this store read it (a shared store: etcd);
    nothing was written. Re-read and decide again."""


class NotLeaderError(StoreError):
    """This master may not write: another master leads (or none does yet). The message
    names the leader when it is known, so a client can go there."""


class WritesInDoubt(NotLeaderError):
    """An earlier write's outcome is unknown and not settled yet: this store sends no write
    until it is (one could overwrite what that write stored, with memory's older copy);
    nothing was sent. Retryable, as a follower's refusal is: the master settles, reloads and
    resumes (master/settler.py, or the elector for a leader)."""


class ChangeDropped(NotLeaderError):
    """The master made its memory equal to the store (a reload after a write in doubt, a
    leader resuming) while this change still waited to be written: it is in neither.
    Retryable; nothing was saved."""


class Store(Protocol):
    def load_all(self) -> list[StoredObject]:
        """Every stored object, of every kind, in no particular order."""
        ...

    def write(
        self,
        puts: Sequence[StoredObject],
        deletes: Sequence[ObjectKey],
        meta: Mapping[str, str] | None = None,
    ) -> None:
        """Apply one batch atomically: all of it is stored, or (StoreError) none of it.

        A put upserts by (obj.kind, key_of(obj)). Deleting a key that is not
        stored is a no-op. Deletes apply before puts, so a key in both ends up
        stored. `meta` entries are set in the same transaction (e.g. the
        resource-version high-water mark that goes with the batch).
        """
        ...

    def meta_get(self, key: str) -> str | None:
        """A small metadata value (cluster uid, last resource version), or None."""
        ...

    def meta_set(self, key: str, value: str) -> None:
        """Set one metadata value durably (its own transaction). On a store several masters
        share, a compare-and-set against the value this store last read (meta_get) or
        saw: WriteConflict when another master changed it since."""
        ...

    def close(self) -> None:
        """Release the store; idempotent. Any later call raises StoreError."""
        ...
