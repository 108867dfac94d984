"""The master's in-memory view of every object, written through to the Store.

All reads (API, controllers, scheduler, node sessions) are served from memory;
the store is durable persistence only. Two write paths, by who is waiting:

- `commit(plan)` — user writes (apply, delete, scale, rollback). The plan runs
  synchronously against memory, but its `put`/`remove`/`record_event` calls
  are staged, not applied. Under the flush lock the staged changes go to the
  store in ONE transaction together with everything queued; only when that
  commit succeeded are they put into memory and told to subscribers. So a
  write is visible to controllers and answered only once it is durable, and a
  failed write leaves memory and disk as they were (nothing is re-queued to be
  saved later). Commits are serialised, so a second identical write planned
  while the first is in flight sees the first's result, never a half state.
- `put`/`remove` outside a plan — controllers and agent status (thousands a
  second): applied to memory at once and queued; `flush()` writes the queue in
  one transaction, by a background task at most every `flush_interval` (a
  failed batch is re-queued: it is already the truth in memory).

A commit also writes the queue, so an answered write means everything in memory
at that moment is durable. A controller may change an object while a commit of
it is in flight (a status update): the user's write then wins with a fresh
resource version and the controller, told of it, derives its status again.

Objects are keyed per kind by `key_name`: "<namespace>/<name>" for namespaced
kinds, the bare name for cluster-scoped ones. Reads take the namespace as a
keyword that defaults to "default", the namespace everything lived in before
namespaces existed. Pods are indexed by (namespace, owner) and by node.

Subscribers (controllers, watch streams, node sessions) get a callback with the
kind, the object, whether it was deleted, and the version memory held before the
change (None: the object is new; for a deletion, the removed version itself). So a
listener that derives something from every object (the scheduler's node sums, an
owner's counts) moves one object's share by its old and new versions without keeping
its own copy of every object to know the old one (a dict per listener, two at
50,000 pods). Every change of memory is told, in the order made, and `previous` is
the version the listener was told last (or held in the snapshot it started from),
also for changes from another master and a reload (replace_all). Callbacks run
synchronously on the event loop and must only enqueue work, never write: a write
from a callback would reach the later listeners before the change being told.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import itertools
import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from typing import TypeVar

from kernel.clock import Clock
from master.event_queue import EVENT_WRITE_INTERVAL, EventQueue, QueuedEvent, write_interval
from master.metrics.series import COMMIT_PHASES, store_write
from master.model import (
    DEFAULT_NAMESPACE,
    DEFAULT_NODE_PORTS,
    DEFAULT_SERVICE_CIDR,
    KINDS,
    Event,
    ManagedFieldsEntry,
    ObjectMeta,
    Pod,
    StoredObject,
    evolve,
    is_namespaced,
    key_name,
    key_of,
)
from master.similar_events import COMBINED_PREFIX, SimilarEvents
from master.store.migrate import KEYS_META, KEYS_NAMESPACED, plan_key_migration
from master.store.port import (
    ChangeDropped,
    NotLeaderError,
    ObjectKey,
    OutcomeUnknown,
    Store,
    StoreError,
)
from master.uids import new_uid
from master.write_fates import WriteFates
from master.write_hold import (
    EVENT_STORE_INTERVAL,
    HELD_KIND,
    HeldPods,
    durable_mark,
    events_due,
    holds_pod,
    to_hold,
)
from master.writers import MASTER_SOURCE, WriterFields, event_writer, untracked

log = logging.getLogger(__name__)

# How long a write waits for a leader that is taking over or confirming its lease.
WRITE_SETTLE_S = 3.0

T = TypeVar("T", bound=StoredObject)
R = TypeVar("R")

# listener(kind, obj, deleted, previous): see the module docstring.
Listener = Callable[[str, StoredObject, bool, StoredObject | None], None]

# Events are a bounded log, not history: the oldest go once there are more.
MAX_EVENTS = 2000


@dataclass(slots=True)
class _Staged:
    """One plan's changes, waiting for their commit: key -> object (None: removed)."""

    changes: dict[ObjectKey, StoredObject | None] = field(default_factory=dict)
    # The resource version each key had in memory when first staged (0: absent),
    # to notice a controller changing it while the commit was in flight.
    base_rv: dict[ObjectKey, int] = field(default_factory=dict)


# A store write (one transaction) this slow is reported as a StoreSlow event.
STORE_SLOW_SECONDS = 1.0
STORE_SLOW_REPORT_EVERY = 60.0


def store_was_slow(seconds: float, last_report: float | None, now: float) -> bool:
    """Whether a write that took `seconds` is reported (slow, and none reported lately)."""
    if seconds < STORE_SLOW_SECONDS:
        return False
    return last_report is None or now - last_report >= STORE_SLOW_REPORT_EVERY


class ClusterState:
    def __init__(self, store: Store, clock: Clock, flush_interval: float = 0.05) -> None:
        self._store = store
        self._clock = clock
        self._flush_interval = flush_interval
        self._objects: dict[str, dict[str, StoredObject]] = {k: {} for k in KINDS}
        # Pod keys by (namespace, owner) and by node name.
        self._pods_by_owner: dict[tuple[str, str], set[str]] = {}
        self._pods_by_node: dict[str, set[str]] = {}
        # Event keys by involved object (kind, namespace, name): an object none is about
        # (each new pod's first event) needs no look for a repeat (_recent_events).
        self._events_about: dict[tuple[str, str, str], set[str]] = {}
        # Per kind, how many times an object was stored or removed in memory (see changes()).
        self._changes: dict[str, int] = dict.fromkeys(KINDS, 0)
        self._rv = 0
        self._pending_puts: dict[ObjectKey, StoredObject] = {}
        self._pending_deletes: set[ObjectKey] = set()
        # Keys created in memory since the last write took the queue (none of them has a
        # stored row): removed before a write takes them, they cost the store nothing, and
        # the background flusher may hold such events back (master/write_hold.py).
        self._unstored: set[ObjectKey] = set()
        # New pods not bound yet, kept out of the queue until they are (write_hold.py):
        # their creation and binding one row. Unstored too, and in memory as any object.
        self._held_pods = HeldPods()
        # When events last went to the store (monotonic), for the hold's interval.
        self._events_stored_at = float("-inf")
        self._listeners: list[Listener] = []
        # Told after memory was made equal to the store (replace_all): see `on_replaced`.
        self._replaced_listeners: list[Callable[[], None]] = []
        self._flush_lock = asyncio.Lock()
        self._dirty = asyncio.Event()
        # Every change up to this resource version is in the store (group commit: a
        # waiter whose change another flush already wrote returns without writing).
        self._durable_rv = 0
        self._flushing: asyncio.Future[None] | None = None
        # Batches whose outcome is unknown, queues a reload dropped: what a flush's waiters
        # whose changes were among them are told (master/write_fates.py).
        self._fates = WriteFates()
        # The resource version of the batch being written (0: none): a reload meanwhile drops
        # only what was queued after it.
        self._writing_rv = 0
        self._slow_reported_at: float | None = None
        self._event_seq = 0
        # Events alike but for their message, combined as Kubernetes does (similar_events.py).
        self._similar = SimilarEvents()
        # Events recorded off the hot path, waiting for write_events (queue_event).
        self._event_queue = EventQueue(MAX_EVENTS)
        self._events_queued = asyncio.Event()
        self._writing_events = False
        # When the queue was last taken (monotonic), and how long the event writer waits
        # for the next batch (event_queue.write_interval: longer through a burst).
        self._events_taken_at = clock.monotonic()
        self.event_write_interval = EVENT_WRITE_INTERVAL
        self._staged: _Staged | None = None
        # None: this master writes; else why it may not (a follower of another leader).
        self._write_gate: Callable[[], str | None] = lambda: None
        self._settling: Callable[[], bool] = lambda: False
        self._leader_address: Callable[[], str] = lambda: ""
        self._leader_api_url: Callable[[], str] = lambda: ""
        # --service-cidr: where Services' cluster IPs come from (master/app/clusterip.py).
        self.service_cidr = ipaddress.ip_network(DEFAULT_SERVICE_CIDR)
        # --cluster-cidr and --node-cidr-mask-size: where nodes' pod subnets come from
        # (master/app/podcidr.py); None gives nodes none.
        self.cluster_cidr: ipaddress.IPv4Network | None = None
        self.node_cidr_mask = 24
        # --service-node-port-range: where node ports come from (master/app/nodeport.py).
        self.node_port_range = DEFAULT_NODE_PORTS
        # Records the master's own writes (controllers, agents' reports, events) in
        # managedFields under Kubernetes' names for their writers (master/writers.py); the
        # server sets master/api/fieldowners.py's. Unset (unit tests): stored as they are.
        self.writer_fields: WriterFields = untracked

    # -- loading and persistence -------------------------------------------------

    async def load(self) -> None:
        """Fill memory from the store (at master start)."""
        objects = await asyncio.to_thread(self._store.load_all)
        marker = await asyncio.to_thread(self._store.meta_get, KEYS_META)
        migration = plan_key_migration(marker, objects)
        if migration is not None:
            try:
                await asyncio.to_thread(
                    self._store.write, migration.puts, migration.deletes, migration.meta
                )
            except StoreError:
                # Several masters on one etcd: another may have migrated it first (its
                # batch changed the keys this one compared); then its result is the store.
                if await asyncio.to_thread(self._store.meta_get, KEYS_META) != KEYS_NAMESPACED:
                    raise
                objects = await asyncio.to_thread(self._store.load_all)
            else:
                if migration.puts:
                    log.info("moved %d objects to namespaced keys", len(migration.puts))
        for obj in objects:
            self._index(obj.kind, obj)
            self._rv = max(self._rv, obj.meta.resource_version)
        stored_rv = await asyncio.to_thread(self._store.meta_get, "resource_version")
        if stored_rv is not None:
            self._rv = max(self._rv, int(stored_rv))
        self._event_seq = len(self._objects["Event"])
        log.info("loaded %d objects from the store (resource version %d)", len(objects), self._rv)

    async def flush(self, hold_events: bool = False) -> None:
        """Make every change made before this call durable.

        `hold_events` (the background flusher only): one write, which may keep newly
        logged events queued (master/write_hold.py); nobody waits on those.

        Changes queued by anyone go in one transaction (group commit). A caller
        whose changes an earlier flush already wrote returns at once instead of
        writing the changes queued since, and callers arriving during a flush wait
        for it together instead of queueing on the lock one by one: with a thousand
        agents registering at once, each lock hand-off waited for a turn of the
        event loop, and registrations waited for tens of seconds.
        """
        target = self._rv
        floor = self._durable_rv
        mark = self._fates.mark()
        while self._durable_rv < target:
            self._raise_fate(mark, floor, target)
            running = self._flushing
            if running is not None:
                # Its outcome is its starter's to report; this caller checks again.
                await asyncio.wait({running})
                continue
            done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            self._flushing = done
            try:
                async with self._flush_lock:
                    await self._flush_queued(hold_events)
            except StoreError as exc:
                # A refusal now ("nothing was changed") must not hide that this caller's
                # changes rode in another's batch whose outcome is unknown.
                if not isinstance(exc, OutcomeUnknown):
                    self._raise_fate(mark, floor, target)
                raise
            finally:
                self._flushing = None
                done.set_result(None)
            if hold_events:
                return
        # A reload may have emptied the queue this caller waited on (then "written").
        self._raise_fate(mark, floor, target)

    def _raise_fate(self, mark: int, floor: int, target: int) -> None:
        fate = self._fates.since(mark, floor, target)
        if fate == "unknown":
            raise OutcomeUnknown(
                "the store did not confirm a batch of writes that held this change: it may or "
                "may not have been saved (read it back to see)"
            )
        if fate == "dropped":
            raise ChangeDropped(
                "the master reloaded its state from the store before this change was written: "
                "nothing was saved; retry"
            )

    async def _flush_queued(self, hold_events: bool = False) -> None:
        """Write every queued change in one transaction (the caller holds the lock);
        with `hold_events`, newly logged events may stay queued (master/write_hold.py)."""
        now = self._clock.monotonic()
        self._release(self._held_pods.take_due(now) if hold_events else self._held_pods.take_all())
        if not self._pending_puts and not self._pending_deletes:
            self._durable_rv = max(self._durable_rv, self._mark(self._rv, ()))
            return
        # A closed gate holds the queue too: a follower's or a paused leader's write is
        # refused by etcd anyway, and a single master paused by a write in doubt
        # (master/settler.py) must not store what memory holds before it reloads (a
        # deployment queued without a scale that landed would overwrite it: the store
        # adopts a key holding its own unknown write, and writes over it).
        self._check_writable()
        due = not hold_events or events_due(now, self._events_stored_at)
        held = to_hold(self._pending_puts, self._unstored, due)
        self._dirty.clear()
        if held and len(held) == len(self._pending_puts) and not self._pending_deletes:
            self._durable_rv = max(self._durable_rv, self._mark(self._rv, held.values()))
            return  # only held events: nothing to write yet
        if not held and any(key[0] == HELD_KIND for key in self._unstored):
            self._events_stored_at = now
        puts = [obj for key, obj in self._pending_puts.items() if key not in held]
        deletes = list(self._pending_deletes)
        rv = self._rv
        self._pending_puts = held
        self._pending_deletes = set()
        self._unstored = set(held)
        started = self._clock.monotonic()
        durable_before = self._durable_rv
        self._writing_rv = rv
        try:
            await asyncio.to_thread(self._write, puts, deletes, rv)
        except Exception as exc:
            if isinstance(exc, OutcomeUnknown):
                self._fates.record(durable_before, rv, "unknown")
            self._requeue(puts, deletes)
            raise
        finally:
            self._writing_rv = 0
        self._durable_rv = max(self._durable_rv, self._mark(rv, held.values()))
        self._note_write(self._clock.monotonic() - started, len(puts) + len(deletes))

    def _mark(self, written_rv: int, held: Iterable[StoredObject]) -> int:
        """What a write at `written_rv` makes durable, `held` events and the held pods
        left queued (`durable_mark`)."""
        mark = durable_mark(written_rv, held)
        oldest_pod = self._held_pods.oldest_version()
        return mark if oldest_pod is None else min(mark, oldest_pod - 1)

    def _release(self, pods: list[tuple[ObjectKey, Pod]]) -> None:
        """Held pods into the queue, as new objects (no stored row)."""
        for key, pod in pods:
            self._pending_puts[key] = pod
            self._unstored.add(key)
        if pods:
            self._dirty.set()

    def _note_write(self, seconds: float, changes: int) -> None:
        """Say so, as a cluster event, when the store held the master up (at most once a
        minute): a slow disk or etcd delays every write and registration, not the leases."""
        now = self._clock.monotonic()
        if not store_was_slow(seconds, self._slow_reported_at, now):
            return
        self._slow_reported_at = now
        if not self.writable:
            # The write is durable: a leader that paused meanwhile must not fail it over
            # its own event (it said "nothing was changed" of an acknowledged change).
            log.warning("writing %d changes to the store took %.1fs", changes, seconds)
            return
        self.record_event(
            "Cluster",
            "store",
            "StoreSlow",
            f"writing {changes} changes to the store took {seconds:.1f}s (more than "
            f"{STORE_SLOW_SECONDS:g}s): the master's writes, the API's answers and agents' "
            "registrations waited for it; node leases do not wait for the store",
            "Warning",
        )

    def _requeue(self, puts: list[StoredObject], deletes: list[ObjectKey]) -> None:
        """Put a failed batch back, unless a key was changed again meanwhile."""
        for obj in puts:
            key = (obj.kind, key_of(obj))
            if key not in self._pending_puts and key not in self._pending_deletes:
                self._pending_puts[key] = obj
        for key in deletes:
            if key not in self._pending_puts:
                self._pending_deletes.add(key)
            else:
                # Created again since: its stored row (the delete failed) is still there.
                self._unstored.discard(key)
        self._dirty.set()

    def _write(self, puts: list[StoredObject], deletes: list[ObjectKey], rv: int) -> None:
        # Deleted objects take their versions with them; the high-water mark goes
        # in the same transaction so versions never go backwards across a restart.
        with store_write(len(puts) + len(deletes)):
            self._store.write(puts, deletes, meta={"resource_version": str(rv)})

    async def commit(self, plan: Callable[[], R]) -> R:
        """Run `plan` with its writes staged, make them durable, then visible.

        `plan` must be synchronous (no awaits) and may raise to refuse; then
        nothing is written. If the store fails, StoreError propagates and
        neither memory nor disk holds any of the plan's changes.
        """
        deadline = self._clock.monotonic() + WRITE_SETTLE_S
        while True:
            await self._wait_settled(deadline)
            asked = self._clock.monotonic()
            async with self._flush_lock:
                COMMIT_PHASES.labels("lock").observe(self._clock.monotonic() - asked)
                # The lock may have been held by a flush waiting on etcd through a pause.
                if not self._waits(deadline):
                    return await self._commit_locked(plan)

    async def _commit_locked(self, plan: Callable[[], R]) -> R:
        """commit()'s body, under the flush lock."""
        self._check_writable()
        staged = _Staged()
        self._staged = staged
        started = self._clock.monotonic()
        try:
            result = plan()
        finally:
            self._staged = None
            COMMIT_PHASES.labels("plan").observe(self._clock.monotonic() - started)
        self._release(self._held_pods.take_all())  # an answered write: everything durable
        pending_puts = list(self._pending_puts.values())
        pending_deletes = list(self._pending_deletes)
        if not staged.changes and not pending_puts and not pending_deletes:
            return result
        self._pending_puts = {}
        self._pending_deletes = set()
        self._unstored = set()
        self._dirty.clear()
        mine = staged.changes
        puts = [o for o in pending_puts if (o.kind, key_of(o)) not in mine]
        puts += [o for o in mine.values() if o is not None]
        deletes = [k for k in pending_deletes if k not in mine]
        deletes += [k for k, o in mine.items() if o is None]
        rv = self._rv
        started = self._clock.monotonic()
        durable_before = self._durable_rv
        self._writing_rv = rv
        try:
            await asyncio.to_thread(self._write, puts, deletes, rv)
        except Exception as exc:
            if isinstance(exc, OutcomeUnknown):
                self._fates.record(durable_before, rv, "unknown")
            self._requeue(pending_puts, pending_deletes)
            raise
        finally:
            self._writing_rv = 0
        stored = self._clock.monotonic()
        COMMIT_PHASES.labels("store").observe(stored - started)
        self._durable_rv = max(self._durable_rv, rv)
        self._publish(staged)
        COMMIT_PHASES.labels("publish").observe(self._clock.monotonic() - stored)
        self._note_write(stored - started, len(puts) + len(deletes))
        return result

    def _publish(self, staged: _Staged) -> None:
        """Make committed changes the in-memory truth and tell subscribers."""
        for key, obj in staged.changes.items():
            kind, okey = key
            current = self._objects[kind].get(okey)
            moved = (current.meta.resource_version if current else 0) != staged.base_rv[key]
            if obj is None:
                if current is not None:
                    self._unindex(kind, current)
                    self._pending_puts.pop(key, None)  # a racing put must not resurrect it
                    self._held_pods.take(key)
                    self._unstored.discard(key)
                    self._notify(kind, current, True, current)
                continue
            if moved and current is None:
                continue  # removed meanwhile (a queued delete follows): stays removed
            if moved:
                # Changed meanwhile: the user's write wins, under a newer version
                # (queued so the stored row gets it too; its content is durable).
                self._rv += 1
                obj = replace(obj, meta=replace(obj.meta, resource_version=self._rv))
                self._pending_puts[key] = obj
                self._dirty.set()
            self._unindex(kind, current)
            self._index(kind, obj)
            self._notify(kind, obj, False, current)
        self._trim_events()

    async def run_flusher(self) -> None:
        """Background task: persist queued changes in batches (newly logged events up to
        EVENT_STORE_INTERVAL later: master/write_hold.py)."""
        while True:
            if (self._pending_puts or self._held_pods) and not self._dirty.is_set():
                # Only held events or pods wait: written when due, or with the next change.
                dues: list[float] = []
                if self._pending_puts:
                    dues.append(self._events_stored_at + EVENT_STORE_INTERVAL)
                pod_due = self._held_pods.next_due()
                if pod_due is not None:
                    dues.append(pod_due)
                left = min(dues) - self._clock.monotonic()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._dirty.wait(), max(0.0, left))
            else:
                await self._dirty.wait()
            await asyncio.sleep(self._flush_interval)
            try:
                await self.flush(hold_events=True)
            except NotLeaderError as e:
                # Queued until this master may write again (or dropped by its reload).
                log.info("persisting state waits: %s", e)
                await asyncio.sleep(1.0)
            except Exception:
                log.exception("persisting state failed; will retry")
                await asyncio.sleep(1.0)

    # -- reads ----------------------------------------------------------------------

    async def durable_for_readers(self) -> None:
        """Write the held pods (master/write_hold.py) before a user's read answers: what a
        user is shown must survive the master. A new pod waits out of the store until it
        is bound, up to ~10 s in a 50,000-pod burst; a Pending pod a user listed then, and
        a master killed -9, and the replacement's controllers made it again under another
        name (the listed one never was). With no pod held (nearly always) this costs a
        length check; during a burst someone reads in, one write of what is held (group
        commit with any other flush). A store that cannot write now (a follower, a write
        in doubt) does not fail the read: it shows memory, as before."""
        if not self._held_pods:
            return
        try:
            await self.flush()
        except StoreError as exc:
            log.info("a read shows pods not yet in the store: %s", exc)

    def get(self, kind: str, name: str, namespace: str = DEFAULT_NAMESPACE) -> StoredObject | None:
        """kind/name in `namespace` (ignored for cluster-scoped kinds)."""
        return self.get_key(kind, key_name(kind, namespace, name))

    def get_key(self, kind: str, key: str) -> StoredObject | None:
        """The object stored under `key` (`key_name`: "ns/name", or a cluster-scoped name)."""
        if kind == "Event" and self._event_queue:
            self.write_events()
        staged = self._staged
        if staged is not None and (kind, key) in staged.changes:
            return staged.changes[(kind, key)]
        return self._objects[kind].get(key)

    def count(self, kind: str) -> int:
        """How many objects of `kind` there are (of every namespace)."""
        if kind == "Event":
            self.write_events()
        return len(self._objects[kind])

    def changes(self, kind: str) -> int:
        """A number that moves whenever an object of `kind` is stored or removed: what is
        derived from all of them (the pod network from the Nodes) is still valid while it
        stands, known in O(1) instead of comparing every object."""
        return self._changes[kind]

    def objects(self, kind: str, namespace: str | None = None) -> list[StoredObject]:
        """Every object of `kind`; only those of `namespace` when it is given."""
        if kind == "Event":
            self.write_events()  # (queued ones are read as written: queue_event)
        if namespace is None or not is_namespaced(kind):
            return list(self._objects[kind].values())
        return [o for o in self._objects[kind].values() if o.meta.namespace == namespace]

    def pods(self, namespace: str | None = None) -> list[Pod]:
        return [p for p in self.objects("Pod", namespace) if isinstance(p, Pod)]

    def pod(self, name: str, namespace: str = DEFAULT_NAMESPACE) -> Pod | None:
        obj = self.get("Pod", name, namespace)
        return obj if isinstance(obj, Pod) else None

    def _pod_at(self, key: str) -> Pod | None:
        obj = self.get_key("Pod", key)
        return obj if isinstance(obj, Pod) else None

    def pods_of_owner(self, owner: str, namespace: str = DEFAULT_NAMESPACE) -> list[Pod]:
        keys = self._pods_by_owner.get((namespace, owner), ())
        return [p for k in keys if (p := self._pod_at(k)) is not None]

    def pods_on_node(self, node: str) -> list[Pod]:
        """The pods bound to `node`, of every namespace."""
        return [p for k in self._pods_by_node.get(node, ()) if (p := self._pod_at(k)) is not None]

    @property
    def resource_version(self) -> int:
        return self._rv

    def now(self) -> float:
        """The wall clock writes are stamped with (the injected clock)."""
        return self._clock.now()

    # -- writes ---------------------------------------------------------------------

    def subscribe(self, listener: Listener) -> Callable[[], None]:
        self._listeners.append(listener)
        return lambda: self._listeners.remove(listener)

    def on_replaced(self, callback: Callable[[], None]) -> Callable[[], None]:
        """`callback()` runs after every replace_all (a reload): what memory held and the
        store did not is gone, agents' reports applied meanwhile too, and only their senders
        can say them again (the node sessions ask them to). Synchronous, like listeners:
        it must only enqueue work. Returns the way to stop it."""
        self._replaced_listeners.append(callback)
        return lambda: self._replaced_listeners.remove(callback)

    def put(self, obj: T) -> T:
        """Store a new or changed object; returns it with its new resource version."""
        return self._put(obj, None)

    def _put(self, obj: T, managed_fields: tuple[ManagedFieldsEntry, ...] | None) -> T:
        """`put`, the metadata carrying `managed_fields` when given (put_by's ledger: one
        copy of the object and its metadata for both)."""
        if self._staged is None:
            self._check_writable()
        kind = obj.kind
        self._rv += 1
        meta = obj.meta
        key = (kind, key_of(obj))
        existing = self.get_key(*key)
        # One new metadata and one new object (`evolve`: each is a share of a put at
        # thousands a second).
        ledger = meta.managed_fields if managed_fields is None else managed_fields
        if existing is None:
            meta = evolve(
                meta,
                uid=meta.uid or new_uid(),
                created_at=meta.created_at or self._clock.now(),
                resource_version=self._rv,
                managed_fields=ledger,
            )
        else:
            meta = evolve(
                meta,
                uid=existing.meta.uid,
                created_at=existing.meta.created_at,
                resource_version=self._rv,
                managed_fields=ledger,
            )
        stored = evolve(obj, meta=meta)
        if self._staged is not None:
            self._stage(key, stored)
            return stored
        if (
            isinstance(existing, Pod)
            and isinstance(stored, Pod)
            and existing.owner == stored.owner
            and existing.node_name == stored.node_name
        ):
            # The same pod on the same node and owner (every status report): only its
            # place in the kind's dict moves; the owner and node index sets stay as they are.
            self._changes[kind] += 1
            objects = self._objects[kind]
            del objects[key[1]]
            objects[key[1]] = stored
        else:
            self._unindex(kind, existing)
            self._index(kind, stored)
        held = self._held_pods
        unstored = (existing is None and key not in self._pending_deletes) or key in held
        if isinstance(stored, Pod) and holds_pod(stored, unstored):
            held.hold(key, stored, self._clock.monotonic())  # queued once bound (write_hold.py)
        else:
            if unstored:
                held.take(key)
                self._unstored.add(key)  # no stored row: see remove_key
            self._pending_deletes.discard(key)
            self._pending_puts[key] = stored
            self._dirty.set()
        self._notify(kind, stored, False, existing)
        return stored

    def put_by(self, writer: str, obj: T, subresource: str = "") -> T:
        """`put` of `writer`'s Update of the object (through `subresource`, "" for the
        object itself), recorded in its managedFields (master/writers.py)."""
        existing = self.get_key(obj.kind, key_of(obj))
        ledger = self.writer_fields(existing, obj, writer, subresource, self._clock.now())
        return self._put(obj, ledger)

    def remove(
        self, kind: str, name: str, namespace: str = DEFAULT_NAMESPACE
    ) -> StoredObject | None:
        """Delete kind/name of `namespace` (ignored for cluster-scoped kinds)."""
        return self.remove_key(kind, key_name(kind, namespace, name))

    def remove_key(self, kind: str, okey: str) -> StoredObject | None:
        """Delete the object stored under `okey` (see `get_key`)."""
        if self._staged is None:
            self._check_writable()
        existing = self.get_key(kind, okey)
        if existing is None:
            return None
        self._rv += 1
        key = (kind, okey)
        if self._staged is not None:
            self._stage(key, None)
            return existing
        self._unindex(kind, existing)
        self._pending_puts.pop(key, None)
        if self._held_pods.take(key) is not None:
            pass  # held since its creation: never written, nothing to delete
        elif key in self._unstored:
            # Created since the last write took the queue: no row to delete (an event the
            # log trimmed before it was written: most of them in a burst).
            self._unstored.discard(key)
        else:
            self._pending_deletes.add(key)
            self._dirty.set()
        self._notify(kind, existing, True, existing)
        return existing

    # -- several masters: the leader writes, the others mirror it ----------------------

    def set_write_gate(
        self,
        gate: Callable[[], str | None],
        leader: Callable[[], str] | None = None,
        leader_api_url: Callable[[], str] | None = None,
        settling: Callable[[], bool] | None = None,
    ) -> None:
        """`gate()` is None while this master may write, else one sentence saying why not;
        `leader()` is the address of the master that writes ("" when unknown), and
        `leader_api_url()` the URL of its Kubernetes API ("" when unknown or none).
        `settling()` is true while this master leads but may not write for a moment (taking
        over, or confirming its lease): a write then waits up to WRITE_SETTLE_S for it."""
        self._write_gate = gate
        self._settling = settling or (lambda: False)
        self._leader_address = leader or (lambda: "")
        self._leader_api_url = leader_api_url or (lambda: "")

    def leader_address(self) -> str:
        """Where writes go when this master refuses them ("" when unknown or this one)."""
        return self._leader_address()

    def leader_api_url(self) -> str:
        """The leader's Kubernetes API URL when another master leads ("" otherwise)."""
        return self._leader_api_url()

    @property
    def writable(self) -> bool:
        return self._write_gate() is None

    @property
    def following(self) -> bool:
        """Neither writing nor settling: another master leads, or none does (this one was
        deposed, or never led). Its agents' sessions belong with the leader."""
        return not self.writable and not self._settling()

    def write_refusal(self) -> str:
        """Why this master may not write now ("" when it may)."""
        return self._write_gate() or ""

    def _writer_unknown(self) -> bool:
        """Neither this master writes, nor is it settling, nor does it know who writes."""
        return not self.writable and not self._settling() and not self._leader_address()

    async def wait_for_a_writer(self) -> None:
        """A write reaching a master that neither writes nor knows who does (one just
        started, or a leader election under way) waits up to WRITE_SETTLE_S for a writer,
        as a write to a leader confirming its lease does, instead of being refused at once
        with "no master is the leader". Forwarders call this before they decide."""
        deadline = self._clock.monotonic() + WRITE_SETTLE_S
        while self._writer_unknown() and self._clock.monotonic() < deadline:
            await self._clock.sleep(0.02)

    def _waits(self, deadline: float) -> bool:
        """Whether a write should wait: the leader takes over or confirms its lease (an etcd
        member electing a new Raft leader takes about that long), and time is left."""
        return (
            self._write_gate() is not None
            and self._settling()
            and self._clock.monotonic() < deadline
        )

    async def _wait_settled(self, deadline: float) -> None:
        while self._waits(deadline):
            await self._clock.sleep(0.02)

    def _check_writable(self) -> None:
        why = self._write_gate()
        if why is not None:
            raise NotLeaderError(why)

    def apply_remote(self, obj: StoredObject) -> None:
        """Another master stored `obj` (seen in the store): make it the in-memory truth."""
        kind = obj.kind
        previous = self._objects[kind].get(key_of(obj))
        self._unindex(kind, previous)
        self._index(kind, obj)
        self._rv = max(self._rv, obj.meta.resource_version)
        self._notify(kind, obj, False, previous)

    def remove_remote(self, kind: str, key: str) -> None:
        """Another master deleted the object stored under (kind, key) (see `key_name`)."""
        existing = self._objects[kind].get(key)
        if existing is not None:
            self._unindex(kind, existing)
            self._notify(kind, existing, True, existing)

    def observe_resource_version(self, rv: int) -> None:
        """Another master's high-water mark: versions this master hands out stay above it."""
        self._rv = max(self._rv, rv)

    async def reload(self) -> None:
        """Read the store again and make memory equal to it (a write refused because
        another master changed what it compared, or one whose outcome was unknown: the
        store is the truth). Under the flush lock: a batch written between the read and
        the replace would be in the store and, dropped from the queue, not in memory."""
        async with self._flush_lock:
            objects = await asyncio.to_thread(self._store.load_all)
            stored_rv = await asyncio.to_thread(self._store.meta_get, "resource_version")
            rv = max((o.meta.resource_version for o in objects), default=0)
            self.replace_all(objects, max(rv, int(stored_rv or 0)))

    def replace_all(self, objects: Iterable[StoredObject], rv: int) -> None:
        """Make memory equal to the store's full contents (a master taking over, or one
        deposed); what is queued here and not stored is dropped: the store is the truth.
        Those told `on_replaced` hear of it last."""
        if self._pending_puts or self._pending_deletes or self._held_pods:
            # Flushes waiting on these must not then find them "written" (write_fates.py).
            # (A batch being written is not dropped: it is the store's to settle.)
            self._fates.record(max(self._durable_rv, self._writing_rv), self._rv, "dropped")
        self._pending_puts = {}
        self._pending_deletes = set()
        self._unstored = set()
        self._held_pods = HeldPods()
        self._dirty.clear()
        seen: set[ObjectKey] = set()
        for obj in objects:
            seen.add((obj.kind, key_of(obj)))
            current = self._objects[obj.kind].get(key_of(obj))
            if current != obj:
                self.apply_remote(obj)
        for kind, by_name in self._objects.items():
            for key in [k for k in by_name if (kind, k) not in seen]:
                self.remove_remote(kind, key)
        self._rv = max(self._rv, rv)
        self._event_seq = max(self._event_seq, len(self._objects["Event"]))
        for callback in list(self._replaced_listeners):
            try:
                callback()
            except Exception:
                log.exception("reload listener failed")

    def _stage(self, key: ObjectKey, obj: StoredObject | None) -> None:
        if self._staged is None:
            raise RuntimeError("a state change outside ClusterState.commit (a programming error)")
        if key not in self._staged.base_rv:
            current = self._objects[key[0]].get(key[1])
            self._staged.base_rv[key] = current.meta.resource_version if current else 0
        self._staged.changes[key] = obj

    def record_event(
        self,
        kind: str,
        name: str,
        reason: str,
        message: str,
        type_: str = "Normal",
        source: str = MASTER_SOURCE,
        namespace: str = DEFAULT_NAMESPACE,
        writer: str = "",
    ) -> Event | None:
        """Append to the event log, folding repeats of the same event into a count; the
        event as logged (None: queued behind a burst's, see below).

        The event lives in the involved object's namespace; events of cluster-scoped
        objects (nodes) go to "default", as Kubernetes records them. `writer`: who records
        it in managedFields (default: by its source, master/writers.py). Events queued
        before it (`queue_event`) are written first: the log stays in order. Through a
        burst (the event writer's batches BURST_WRITE_INTERVAL apart: event_queue.py) it
        joins the queue behind them instead: written first, they would all be written
        each time a node's event came, a few a second at 5,000 nodes, which is the cost
        the longer batches save. It is written with them, or as soon as anyone reads
        events, and only the log's own trimming could have lost it."""
        if self._event_queue and self._staged is None and self._in_burst():
            self.queue_event(kind, name, reason, message, type_, source, namespace, writer)
            return None
        self.write_events()
        event = QueuedEvent(
            kind, name, reason, message, type_, source, namespace, writer, self._clock.now()
        )
        return self._record(event, None)

    def _in_burst(self) -> bool:
        """Whether queued events wait for batches further apart (event_queue.py)."""
        return self.event_write_interval != EVENT_WRITE_INTERVAL

    def queue_event(
        self,
        kind: str,
        name: str,
        reason: str,
        message: str,
        type_: str = "Normal",
        source: str = MASTER_SOURCE,
        namespace: str = DEFAULT_NAMESPACE,
        writer: str = "",
    ) -> None:
        """`record_event` off the hot path, as Kubernetes' event recorder does it: the
        event waits in a bounded queue (master/event_queue.py) and is written with the
        others at most EVENT_WRITE_INTERVAL later, or as soon as anyone reads events. For
        the events every pod causes (created, scheduled, started: three a pod, a third of
        the master's CPU from apply to Running at 50,000 pods): a burst's repeats of one
        event are folded into one write, and a full queue drops its oldest, which the
        bounded log would have trimmed before anyone could read them. Inside a commit's
        plan the event is part of the commit, as with record_event."""
        if self._staged is not None:
            self.record_event(kind, name, reason, message, type_, source, namespace, writer)
            return
        self._check_writable()
        event = QueuedEvent(
            kind, name, reason, message, type_, source, namespace, writer, self._clock.now()
        )
        self._event_queue.put(event)
        self._events_queued.set()

    def has_event(
        self, kind: str, name: str, namespace: str, reason: str, message: str, source: str
    ) -> bool:
        """Whether the log holds an event about this object with this reason, message and
        source (queued ones are written first). A report sent again after a reload, which
        may or may not have dropped the event it caused, asks this before recording it
        again: a reload that kept the event must not see it counted twice."""
        if self._event_queue:
            self.write_events()
        if not is_namespaced(kind):
            namespace = DEFAULT_NAMESPACE
        events = self._objects["Event"]
        for key in self._events_about.get((kind, namespace, name), ()):
            ev = events.get(key)
            if isinstance(ev, Event) and (ev.reason, ev.message, ev.source) == (
                reason,
                message,
                source,
            ):
                return True
        return False

    @property
    def events_dropped(self) -> int:
        """Queued events dropped from a full queue so far (`queue_event`)."""
        return self._event_queue.dropped_total

    def write_events(self) -> None:
        """Write the queued events (`queue_event`) into the log, now."""
        queue = self._event_queue
        if not queue or self._writing_events or self._staged is not None:
            # (Not inside a commit's plan: a plan refused would take them with it.)
            return
        dropped, taken = queue.dropped, queue.take()
        now = self._clock.monotonic()
        self.event_write_interval = write_interval(
            dropped + len(taken), now - self._events_taken_at, queue.capacity
        )
        self._events_taken_at = now
        if self._in_burst():
            # A burst's batch: the queue already dropped what the store's hold of new events
            # would have spared it (write_hold.py); held too, an event could reach the store
            # 10 s after it was recorded. It goes with the next background write.
            self._events_stored_at = float("-inf")
        if dropped:
            log.info(
                "%d events dropped from a full queue (the log would have trimmed them)", dropped
            )
        if not self.writable:
            # Deposed meanwhile: the leader records its own (best effort, as all events).
            log.info("%d queued events dropped: this master no longer writes", len(taken))
            return
        self._writing_events = True
        folded: dict[str, tuple[str, Event]] = {}
        try:
            for event in taken:
                self._record(event, folded)
            events = self._objects["Event"]
            for key, (writer, ev) in folded.items():
                if key in events:  # (not trimmed meanwhile)
                    self.put_by(writer, ev)
        finally:
            self._writing_events = False

    async def run_event_writer(self) -> None:
        """Background task: write queued events every EVENT_WRITE_INTERVAL (further apart
        through a burst: `event_write_interval`, master/event_queue.py)."""
        while True:
            await self._events_queued.wait()
            await self._clock.sleep(self.event_write_interval)
            self._events_queued.clear()
            try:
                self.write_events()
            except Exception:
                log.exception("writing queued events failed; they are dropped")

    def _record(self, event: QueuedEvent, folded: dict[str, tuple[str, Event]] | None) -> Event:
        """record_event's work for one event as of its time. `folded`: count changes of
        events already in the log are kept there to be written once (write_events), not
        put one by one; None: put at once."""
        kind, name, reason, message, type_, source, namespace, writer, now = event
        writer = writer or event_writer(source)
        if not is_namespaced(kind):
            namespace = DEFAULT_NAMESPACE
        group = (kind, namespace, name, type_, reason, source)
        if self._similar.observe(group, message, now):
            # Many alike but for their message: one event counts them (similar_events.py).
            message = COMBINED_PREFIX + message
            into = self._similar.combined_into(group)
            combined = self._logged_event(into, folded) if into is not None else None
            if combined is not None:
                again = replace(combined, count=combined.count + 1, last_seen=now, message=message)
                return self._fold(writer, again, folded)
            stored = self._new_event(
                kind, name, reason, message, type_, source, namespace, writer, now
            )
            self._similar.combine_into(group, key_of(stored))
            return stored
        for ev in self._recent_events(kind, name, namespace):
            if folded is not None:
                ev = self._logged_event(key_of(ev), folded) or ev
            if ev.reason == reason and ev.message == message and now - ev.last_seen < 600:
                return self._fold(writer, replace(ev, count=ev.count + 1, last_seen=now), folded)
        return self._new_event(kind, name, reason, message, type_, source, namespace, writer, now)

    def _logged_event(self, key: str, folded: dict[str, tuple[str, Event]] | None) -> Event | None:
        """The event under `key` in the log, with the count changes not yet written."""
        found = self.get_key("Event", key) if folded is None else self._objects["Event"].get(key)
        if not isinstance(found, Event):
            return None
        if folded is not None and key in folded:
            return folded[key][1]
        return found

    def _fold(self, writer: str, ev: Event, folded: dict[str, tuple[str, Event]] | None) -> Event:
        """A count change of a logged event: put now, or (`folded`) once at the end of the
        batch. Moved to the end of the log either way, as a put moves it: trimming goes
        by that order, and the event a burst keeps counting into must stay."""
        if folded is None:
            return self.put_by(writer, ev)
        key = key_of(ev)
        events = self._objects["Event"]
        events[key] = events.pop(key)
        folded[key] = (writer, ev)
        return ev

    def _new_event(
        self,
        kind: str,
        name: str,
        reason: str,
        message: str,
        type_: str,
        source: str,
        namespace: str,
        writer: str,
        now: float,
    ) -> Event:
        self._event_seq += 1
        event = Event(
            meta=ObjectMeta(
                name=f"{name}.{int(now * 1000):x}{self._event_seq:04x}",
                namespace=namespace,
                created_at=now,
            ),
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
        stored = self._put(event, self.writer_fields(None, event, writer, "", now))
        self._trim_events()
        return stored

    def _recent_events(self, kind: str, name: str, namespace: str) -> Iterable[Event]:
        # The most recent few are enough to find a repeat; none to look at when no event
        # in memory is about this object.
        # (reversed() walks the dict from its end: copying all 2,000 keys to take the
        # last 50 was a share of every event's cost, three events a pod at scale.)
        if not self._events_about.get((kind, namespace, name)):
            return
        events = self._objects["Event"]
        for ev in itertools.islice(reversed(events.values()), 50):
            if (
                isinstance(ev, Event)
                and ev.involved_kind == kind
                and ev.involved_name == name
                and ev.meta.namespace == namespace
            ):
                yield ev

    def _trim_events(self) -> None:
        if self._staged is not None:
            return  # trimmed when the commit publishes
        events = self._objects["Event"]
        excess = len(events) - MAX_EVENTS
        if excess > 0:
            for key in list(itertools.islice(events, excess)):
                self.remove_key("Event", key)

    def _notify(
        self, kind: str, obj: StoredObject, deleted: bool, previous: StoredObject | None
    ) -> None:
        for listener in list(self._listeners):
            try:
                listener(kind, obj, deleted, previous)
            except Exception:
                log.exception("state listener failed")

    def _index(self, kind: str, obj: StoredObject) -> None:
        # dicts keep insertion order; re-inserting moves an object to the end, which
        # keeps the event log in time order.
        key = key_of(obj)
        self._changes[kind] += 1
        self._objects[kind].pop(key, None)
        self._objects[kind][key] = obj
        if isinstance(obj, Pod):
            if obj.owner:
                self._pods_by_owner.setdefault((obj.meta.namespace, obj.owner), set()).add(key)
            if obj.node_name:
                self._pods_by_node.setdefault(obj.node_name, set()).add(key)
        elif isinstance(obj, Event):
            about = (obj.involved_kind, obj.meta.namespace, obj.involved_name)
            self._events_about.setdefault(about, set()).add(key)

    def _unindex(self, kind: str, obj: StoredObject | None) -> None:
        if obj is None:
            return
        key = key_of(obj)
        self._changes[kind] += 1
        self._objects[kind].pop(key, None)
        if isinstance(obj, Pod):
            if obj.owner:
                self._pods_by_owner.get((obj.meta.namespace, obj.owner), set()).discard(key)
            if obj.node_name:
                self._pods_by_node.get(obj.node_name, set()).discard(key)
        elif isinstance(obj, Event):
            about = (obj.involved_kind, obj.meta.namespace, obj.involved_name)
            keys = self._events_about.get(about)
            if keys is not None:
                keys.discard(key)
                if not keys:
                    del self._events_about[about]
