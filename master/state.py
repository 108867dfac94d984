"""The master's in-memory view of every object, written through to the Store.

All reads (API, controllers, scheduler, node sessions) are served from memory;
the store is durable persistence only. Every change goes through `put`/`remove`,
which assign the next resource version, update the indexes (pods by owner and by
node), queue the change for persistence and tell subscribers. Persistence is
batched: `flush()` writes everything queued in one store transaction. User
writes (apply, delete, scale) await a flush before answering, so an
acknowledged change survives a crash; the high-rate traffic (pod status from
agents) is flushed by a background task at most every `flush_interval`, which
turns thousands of updates a second into a handful of transactions.

Subscribers (controllers, watch streams, node sessions) get a callback with the
kind, the object and whether it was deleted. Callbacks run synchronously on the
event loop and must only enqueue work.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Callable, Iterable
from dataclasses import replace
from typing import TypeVar

from kernel.clock import Clock
from master.model import (
    KINDS,
    Event,
    ObjectMeta,
    Pod,
    StoredObject,
)
from master.store.port import ObjectKey, Store

log = logging.getLogger(__name__)

T = TypeVar("T", bound=StoredObject)

Listener = Callable[[str, StoredObject, bool], None]

# Events are a bounded log, not history: the oldest go once there are more.
MAX_EVENTS = 2000


class ClusterState:
    def __init__(self, store: Store, clock: Clock, flush_interval: float = 0.05) -> None:
        self._store = store
        self._clock = clock
        self._flush_interval = flush_interval
        self._objects: dict[str, dict[str, StoredObject]] = {k: {} for k in KINDS}
        self._pods_by_owner: dict[str, set[str]] = {}
        self._pods_by_node: dict[str, set[str]] = {}
        self._rv = 0
        self._pending_puts: dict[ObjectKey, StoredObject] = {}
        self._pending_deletes: set[ObjectKey] = set()
        self._listeners: list[Listener] = []
        self._flush_lock = asyncio.Lock()
        self._dirty = asyncio.Event()
        self._event_seq = 0

    # -- loading and persistence -------------------------------------------------

    async def load(self) -> None:
        """Fill memory from the store (at master start)."""
        objects = await asyncio.to_thread(self._store.load_all)
        for obj in objects:
            self._index(obj.kind, obj)
            self._rv = max(self._rv, obj.meta.resource_version)
        stored_rv = await asyncio.to_thread(self._store.meta_get, "resource_version")
        if stored_rv is not None:
            self._rv = max(self._rv, int(stored_rv))
        self._event_seq = len(self._objects["Event"])
        log.info("loaded %d objects from the store (resource version %d)", len(objects), self._rv)

    async def flush(self) -> None:
        """Write every queued change in one transaction."""
        async with self._flush_lock:
            if not self._pending_puts and not self._pending_deletes:
                return
            puts = list(self._pending_puts.values())
            deletes = list(self._pending_deletes)
            rv = self._rv
            self._pending_puts = {}
            self._pending_deletes = set()
            self._dirty.clear()
            try:
                await asyncio.to_thread(self._write, puts, deletes, rv)
            except Exception:
                self._requeue(puts, deletes)
                raise

    def _requeue(self, puts: list[StoredObject], deletes: list[ObjectKey]) -> None:
        """Put a failed batch back, unless a key was changed again meanwhile."""
        for obj in puts:
            key = (obj.kind, obj.meta.name)
            if key not in self._pending_puts and key not in self._pending_deletes:
                self._pending_puts[key] = obj
        for key in deletes:
            if key not in self._pending_puts:
                self._pending_deletes.add(key)
        self._dirty.set()

    def _write(self, puts: list[StoredObject], deletes: list[ObjectKey], rv: int) -> None:
        # Deleted objects take their versions with them; the high-water mark goes
        # in the same transaction so versions never go backwards across a restart.
        self._store.write(puts, deletes, meta={"resource_version": str(rv)})

    async def run_flusher(self) -> None:
        """Background task: persist queued changes in batches."""
        while True:
            await self._dirty.wait()
            await asyncio.sleep(self._flush_interval)
            try:
                await self.flush()
            except Exception:
                log.exception("persisting state failed; will retry")
                await asyncio.sleep(1.0)

    # -- reads ----------------------------------------------------------------------

    def get(self, kind: str, name: str) -> StoredObject | None:
        return self._objects[kind].get(name)

    def objects(self, kind: str) -> list[StoredObject]:
        return list(self._objects[kind].values())

    def pods(self) -> list[Pod]:
        return [p for p in self._objects["Pod"].values() if isinstance(p, Pod)]

    def pod(self, name: str) -> Pod | None:
        obj = self._objects["Pod"].get(name)
        return obj if isinstance(obj, Pod) else None

    def pods_of_owner(self, owner: str) -> list[Pod]:
        return [p for n in self._pods_by_owner.get(owner, ()) if (p := self.pod(n)) is not None]

    def pods_on_node(self, node: str) -> list[Pod]:
        return [p for n in self._pods_by_node.get(node, ()) if (p := self.pod(n)) is not None]

    @property
    def resource_version(self) -> int:
        return self._rv

    # -- writes ---------------------------------------------------------------------

    def subscribe(self, listener: Listener) -> Callable[[], None]:
        self._listeners.append(listener)
        return lambda: self._listeners.remove(listener)

    def put(self, obj: T) -> T:
        """Store a new or changed object; returns it with its new resource version."""
        kind = obj.kind
        self._rv += 1
        meta = obj.meta
        existing = self._objects[kind].get(meta.name)
        if existing is None:
            meta = replace(
                meta,
                uid=meta.uid or str(uuid.uuid4()),
                created_at=meta.created_at or self._clock.now(),
            )
        else:
            meta = replace(meta, uid=existing.meta.uid, created_at=existing.meta.created_at)
        stored = replace(obj, meta=replace(meta, resource_version=self._rv))
        self._unindex(kind, existing)
        self._index(kind, stored)
        key = (kind, meta.name)
        self._pending_deletes.discard(key)
        self._pending_puts[key] = stored
        self._dirty.set()
        self._notify(kind, stored, False)
        return stored

    def remove(self, kind: str, name: str) -> StoredObject | None:
        existing = self._objects[kind].get(name)
        if existing is None:
            return None
        self._rv += 1
        self._unindex(kind, existing)
        key = (kind, name)
        self._pending_puts.pop(key, None)
        self._pending_deletes.add(key)
        self._dirty.set()
        self._notify(kind, existing, True)
        return existing

    def record_event(
        self,
        kind: str,
        name: str,
        reason: str,
        message: str,
        type_: str = "Normal",
        source: str = "master",
    ) -> Event:
        """Append to the event log, folding repeats of the same event into a count."""
        now = self._clock.now()
        for ev in self._recent_events(kind, name):
            if ev.reason == reason and ev.message == message and now - ev.last_seen < 600:
                return self.put(replace(ev, count=ev.count + 1, last_seen=now))
        self._event_seq += 1
        event = Event(
            meta=ObjectMeta(name=f"{name}.{int(now * 1000):x}{self._event_seq:04x}"),
            involved_kind=kind,
            involved_name=name,
            reason=reason,
            message=message,
            type=type_,
            first_seen=now,
            last_seen=now,
            source=source,
        )
        log.info("event %s %s/%s: %s", reason, kind, name, message)
        stored = self.put(event)
        self._trim_events()
        return stored

    def _recent_events(self, kind: str, name: str) -> Iterable[Event]:
        # Events are named after their object, so a prefix scan of the most
        # recent few is enough to find a repeat without an extra index.
        events = self._objects["Event"]
        for key in reversed(list(events)[-50:]):
            ev = events[key]
            if isinstance(ev, Event) and ev.involved_kind == kind and ev.involved_name == name:
                yield ev

    def _trim_events(self) -> None:
        events = self._objects["Event"]
        excess = len(events) - MAX_EVENTS
        if excess > 0:
            for name in list(events)[:excess]:
                self.remove("Event", name)

    def _notify(self, kind: str, obj: StoredObject, deleted: bool) -> None:
        for listener in list(self._listeners):
            try:
                listener(kind, obj, deleted)
            except Exception:
                log.exception("state listener failed")

    def _index(self, kind: str, obj: StoredObject) -> None:
        # dicts keep insertion order; re-inserting moves an object to the end, which
        # keeps the event log in time order.
        self._objects[kind].pop(obj.meta.name, None)
        self._objects[kind][obj.meta.name] = obj
        if isinstance(obj, Pod):
            if obj.owner:
                self._pods_by_owner.setdefault(obj.owner, set()).add(obj.meta.name)
            if obj.node_name:
                self._pods_by_node.setdefault(obj.node_name, set()).add(obj.meta.name)

    def _unindex(self, kind: str, obj: StoredObject | None) -> None:
        if obj is None:
            return
        self._objects[kind].pop(obj.meta.name, None)
        if isinstance(obj, Pod):
            if obj.owner:
                self._pods_by_owner.get(obj.owner, set()).discard(obj.meta.name)
            if obj.node_name:
                self._pods_by_node.get(obj.node_name, set()).discard(obj.meta.name)
