"""FaultyStore: a Store wrapper that fails or holds writes on demand, for durability tests.

It stands in for a disk that fills up or a file that turns read-only: while
`failing` is set, every write (batch or meta) raises StoreError and stores
nothing, exactly as SqliteStore does when SQLite refuses a commit. `hold()`
parks writes on a gate so a test can act while a flush is in flight.
Reads always reach the wrapped store, so a test can check what is durable.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping, Sequence

from master.model import StoredObject
from master.store.port import ObjectKey, Store, StoreError


class FaultyStore:
    def __init__(self, inner: Store) -> None:
        self.inner = inner
        self.failing = False
        # While `failing`: how many more writes fail before the store works again (None:
        # all of them). A test that needs exactly one write to fail cannot turn `failing`
        # off at the right moment: the next write may already be running in its thread.
        self.failures_left: int | None = None
        # Raised instead of the disk-full error while `failing` (e.g. OutcomeUnknown).
        self.error: StoreError | None = None
        self.attempts = 0
        self._gate = threading.Event()
        self._gate.set()
        self.entered = threading.Event()
        self._lock = threading.Lock()

    def hold(self) -> None:
        """Park every write until `release()` (the write has `entered` meanwhile)."""
        self.entered.clear()
        self._gate.clear()

    def release(self) -> None:
        self._gate.set()

    def fail_next(self, writes: int) -> None:
        """The next `writes` writes fail; those after them work."""
        self.failing, self.failures_left = True, writes

    def _before_write(self) -> None:
        self.attempts += 1
        self.entered.set()
        self._gate.wait(timeout=10)
        with self._lock:
            failing = self.failing
            if failing and self.failures_left is not None:
                self.failures_left -= 1
                self.failing = self.failures_left > 0
        if failing and self.error is not None:
            raise self.error
        if failing:
            raise StoreError("pinnace.db: writing failed: database or disk is full (injected)")

    def load_all(self) -> list[StoredObject]:
        return self.inner.load_all()

    def write(
        self,
        puts: Sequence[StoredObject],
        deletes: Sequence[ObjectKey],
        meta: Mapping[str, str] | None = None,
    ) -> None:
        self._before_write()
        self.inner.write(puts, deletes, meta)

    def meta_get(self, key: str) -> str | None:
        return self.inner.meta_get(key)

    def meta_set(self, key: str, value: str) -> None:
        self._before_write()
        self.inner.meta_set(key, value)

    def close(self) -> None:
        self.inner.close()
