"""Watch streams for the HTTP API: recent changes by resource version, then live ones.

One `WatchHub` per master subscribes to the ClusterState and keeps the last
`history` changes (kind, ADDED/MODIFIED/DELETED, object, resource version).
A watch from resourceVersion N replays the changes after N from that window and
then follows live ones; N older than the window is `410 Gone` (the client lists
again, as Kubernetes clients do). Each watcher has a bounded queue: a client too
slow to keep up is cut off rather than growing the master's memory.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable
from typing import NamedTuple

from master.model import StoredObject, is_namespaced
from master.state import ClusterState

QUEUE_LIMIT = 10_000


class Change(NamedTuple):
    """One change as the hub logs it. (A NamedTuple: one is made for every put and removal
    the master makes, three a pod at apply; a frozen dataclass took twice as long.)"""

    rv: int
    kind: str
    type: str  # ADDED | MODIFIED | DELETED
    obj: StoredObject


class TooOld(Exception):
    """The requested resource version is older than the hub remembers."""


class Watcher:
    """One watch of a kind, in one namespace (None: every namespace)."""

    def __init__(self, kind: str, namespace: str | None = None) -> None:
        self.kind = kind
        self.namespace = namespace
        self.queue: asyncio.Queue[Change | None] = asyncio.Queue()
        self.closed = False

    def wants(self, change: Change) -> bool:
        return change.kind == self.kind and (
            self.namespace is None
            or not is_namespaced(change.kind)
            or change.obj.meta.namespace == self.namespace
        )

    def push(self, change: Change) -> None:
        if self.closed or not self.wants(change):
            return
        if self.queue.qsize() >= QUEUE_LIMIT:
            self.closed = True
            self.queue.put_nowait(None)
            return
        self.queue.put_nowait(change)


class WatchHub:
    def __init__(self, state: ClusterState, history: int = 20_000) -> None:
        self._state = state
        self._log: deque[Change] = deque(maxlen=history)
        self._floor = state.resource_version
        self._watchers: set[Watcher] = set()
        # ADDED or MODIFIED is told by the change's previous version (a set of every
        # object's key, kept for that, was 50,000 keys at 50,000 pods).
        self._unsubscribe: Callable[[], None] = state.subscribe(self._on_change)

    def close(self) -> None:
        self._unsubscribe()
        for w in list(self._watchers):
            w.queue.put_nowait(None)

    def _on_change(
        self, kind: str, obj: StoredObject, deleted: bool, previous: StoredObject | None
    ) -> None:
        type_ = "DELETED" if deleted else "ADDED" if previous is None else "MODIFIED"
        if len(self._log) == self._log.maxlen:
            self._floor = self._log[0].rv
        change = Change(self._state.resource_version, kind, type_, obj)
        self._log.append(change)
        if self._watchers:  # (none, nearly always: no copy of the empty set)
            for w in list(self._watchers):
                w.push(change)

    def open(
        self, kind: str, since: int | None, namespace: str | None = None
    ) -> tuple[Watcher, list[Change]]:
        """A live watcher (of `namespace`; None: all) and the changes after `since` it must
        send first."""
        if since is not None and since < self._floor:
            raise TooOld(f"too old resource version: {since} ({self._floor})")
        w = Watcher(kind, namespace)
        backlog = [] if since is None else [c for c in self._log if w.wants(c) and c.rv > since]
        self._watchers.add(w)
        return w, backlog

    def release(self, w: Watcher) -> None:
        self._watchers.discard(w)
