"""MemoryStore: the Store port in dictionaries, for tests and throwaway masters.

It keeps the same semantics as SqliteStore, checked by the same contract suite:
batches are all-or-nothing, puts upsert by (kind, name), deletes of missing keys
are no-ops, and a closed store refuses every call.

Objects are stored encoded (the same codec as SqliteStore), not by reference.
Model objects are frozen but hold dicts (labels, port maps) that a caller could
still mutate after writing; storing bytes means what `load_all` returns is
exactly what was written, never an alias, and an object the SQLite store would
refuse to encode is refused here too.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping, Sequence

from master.model import StoredObject, key_of
from master.store.codec import decode, encode
from master.store.port import ObjectKey, StoreError


class MemoryStore:
    """The Store port on dicts; see the module docstring."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._objects: dict[ObjectKey, bytes] = {}
        self._meta: dict[str, str] = {}
        self._closed = False
        # How many batches were committed; lets tests assert on batching.
        self.writes = 0

    def load_all(self) -> list[StoredObject]:
        with self._lock:
            self._check_open()
            items = list(self._objects.items())
        return [decode(kind, data) for (kind, _), data in items]

    def write(
        self,
        puts: Sequence[StoredObject],
        deletes: Sequence[ObjectKey],
        meta: Mapping[str, str] | None = None,
    ) -> None:
        # Stage everything first: nothing touches the live dicts until the whole
        # batch has encoded, which is what makes it atomic.
        staged: dict[ObjectKey, bytes] = {}
        for obj in puts:
            try:
                staged[(obj.kind, key_of(obj))] = encode(obj)
            except Exception as e:
                name = getattr(getattr(obj, "meta", None), "name", "?")
                raise StoreError(
                    f"cannot store {getattr(obj, 'kind', type(obj).__name__)}/{name!r}: {e}"
                ) from e
        delete_keys = [(str(kind), str(name)) for kind, name in deletes]
        meta_items = {str(k): str(v) for k, v in (meta or {}).items()}
        with self._lock:
            self._check_open()
            if not staged and not delete_keys and not meta_items:
                return
            for key in delete_keys:
                self._objects.pop(key, None)
            self._objects.update(staged)
            self._meta.update(meta_items)
            self.writes += 1

    def meta_get(self, key: str) -> str | None:
        with self._lock:
            self._check_open()
            return self._meta.get(key)

    def meta_set(self, key: str, value: str) -> None:
        with self._lock:
            self._check_open()
            self._meta[key] = value

    def close(self) -> None:
        with self._lock:
            self._closed = True

    def _check_open(self) -> None:
        if self._closed:
            raise StoreError("the store is closed")
