"""Which queued writes a background flush holds back, and what a flush may call durable.

The event log keeps MAX_EVENTS (2,000) events, and an apply of 50,000 pods logs three a pod
(created, scheduled, started), up to the event queue's 2,000 a second. Written with every
flush (every ~0.05 s), each of them was a row when it was logged and another when the log
trimmed it a second later: ~4,000 of the ~5,000 rows a second the store wrote at 5,000 nodes /
50,000 pods, with their encoding, on a master short of CPU. Events are best effort (the
queue drops the oldest when full), so the background flusher holds newly logged events
back for up to EVENT_STORE_INTERVAL: one the log trims before then is dropped from the
queue and never written, nor deleted (`ClusterState.remove_key`: an object created and
removed between two writes costs the store nothing). At most the log's 2,000 go a time,
and as many deletes: ~800 rows a second at the most instead of ~4,000.

A flush anyone waits on (`ClusterState.flush()`: a registration, a user's write, the
master stopping) writes everything, held events too; a master killed loses at most the
last EVENT_STORE_INTERVAL of events, which the queue already delayed by a second.

New pods wait too, until they are bound (`HeldPods`): a controller creates a Deployment's
pods in slices of its pass and the scheduler binds them after, so at 5,000 nodes / 50,000
pods nearly every pod's creation went to the store in one write and its binding in
another, a row and an encoding a pod for a version nobody outside the master needs: no
agent is told of a pod before it is bound, nobody was answered for it (a user's pod is a
commit, written before the answer), and a master killed meanwhile loses only pods its
controllers make again after the restart (as with a write in flight when it is killed).
A new pod goes with the first write after its binding (its creation and binding one row),
or once the scheduler found it no node (its Unschedulable status: nothing to merge it with,
and a Pending pod a user lists must not be one a master killed then forgets and makes
again under another name), or once it has waited POD_HOLD_INTERVAL unbound, or with any
flush someone waits on. A user's read (get, list, watch: the CLI's and the Kubernetes API's)
is such a flush when any pod is held (ClusterState.durable_for_readers): what a user was
shown is in the store.

A Deployment's new pod, once bound, waits on for its agent's first report
(`awaits_report`), at most BOUND_POD_HOLD_INTERVAL after its binding: the flusher writes
every ~0.05 s and an agent's report comes a round trip later, so the bound version was a
row and an encoding of its own (in the store writer's thread, beside the loop), followed
a moment later by the Running one: at 5,000 nodes / 50,000 pods 2.27 rows a pod. Its
creation, binding and first report now make one row. The agent is told of the pod before
that row, as it was before it (the sessions never waited for the store), for at most
BOUND_POD_HOLD_INTERVAL instead of one write's time: a master killed -9 then forgets the
pod, its replacement's Deployment makes another under a new name, and the agent, which
reports the old one, is told to stop it (the new pod is not in its set) - a young
replica started again, what a binding in flight at the kill cost before. A StatefulSet's
pod (one name, at most one copy running) and a pod of no owner (a user's) are not held
after their binding.
"""

from __future__ import annotations

import heapq
from collections.abc import Iterable, Mapping
from itertools import islice

from master.model import POD_UNSCHEDULABLE, STATEFULSET_OWNER, Pod, PodPhase, StoredObject
from master.store.port import ObjectKey

# How long the background flusher may hold newly logged events back from the store.
EVENT_STORE_INTERVAL = 5.0
# The kind held back.
HELD_KIND = "Event"
# How long the background flusher may hold a new pod back while it is not bound: a
# Deployment's 50,000 pods take ~5-10 s to create on a loaded master and the scheduler binds
# them once it has decided all (master/controllers/manager.py), ~10 s more at 5,000 nodes.
POD_HOLD_INTERVAL = 30.0
# How long the background flusher may hold a new pod back after its binding while its
# agent has not reported it (`awaits_report`): a hollow agent's report is read 0.6-3.5 s
# after its binding at 5,000 nodes.
BOUND_POD_HOLD_INTERVAL = 5.0


def events_due(now: float, stored_at: float, interval: float = EVENT_STORE_INTERVAL) -> bool:
    """Whether held events go with this background flush (monotonic seconds; `stored_at`:
    when events last went to the store)."""
    return now - stored_at >= interval


def to_hold(
    pending: Mapping[ObjectKey, StoredObject], unstored: Iterable[ObjectKey], due: bool
) -> dict[ObjectKey, StoredObject]:
    """The queued puts a background flush keeps back: events created since the last write
    took them (`unstored`: never written, so no stored row is older than memory), unless
    events are due. An event that was stored before (a count folded into it) goes at once:
    the row it replaces is the store's truth until then."""
    if due:
        return {}
    return {
        key: obj
        for key in unstored
        if key[0] == HELD_KIND and (obj := pending.get(key)) is not None
    }


def durable_mark(written_rv: int, held: Iterable[StoredObject]) -> int:
    """The resource version every change up to which is in the store once a batch written
    at `written_rv` committed while `held` stayed queued: just below the oldest held."""
    oldest = min((o.meta.resource_version for o in held), default=written_rv + 1)
    return min(written_rv, oldest - 1)


def awaits_report(pod: Pod) -> bool:
    """Whether `pod` is a Deployment's pod bound to a node that has not reported it yet (its
    status is still the binding's: Pending, no container)."""
    return (
        bool(pod.node_name)
        and bool(pod.owner)
        and not pod.owner.startswith(STATEFULSET_OWNER)
        and pod.status.phase == PodPhase.PENDING
        and not pod.status.container_statuses
    )


def holds_pod(pod: Pod, unstored: bool) -> bool:
    """Whether a put of `pod` waits among the held pods: it has no stored row (`unstored`:
    created since the last write took the queue, or held since), and either no node yet
    and the scheduler has not found it none (then no binding is coming to merge with), or
    it is a Deployment's pod bound and not yet reported (`awaits_report`). A pod being
    deleted goes at once (its agent, if any, must hear of it)."""
    return (
        unstored
        and not pod.deletion_requested_at
        and pod.status.reason != POD_UNSCHEDULABLE
        and (not pod.node_name or awaits_report(pod))
    )


class HeldPods:
    """New pods kept out of the write queue until bound, and a Deployment's until their
    first report (see the module docstring). Each waits in one of two queues, in the order
    it entered it, with when (monotonic) and at which resource version it was first held:
    the unbound by their first hold (due POD_HOLD_INTERVAL after it), the bound by their
    binding (due BOUND_POD_HOLD_INTERVAL after it), so the ones due come off each front
    without a walk of all. The oldest held version (what a write may call durable,
    `durable_mark`) is the unbound queue's first's or the least of the bound ones'."""

    def __init__(self, interval: float | None = None, bound_interval: float | None = None) -> None:
        self._interval = POD_HOLD_INTERVAL if interval is None else interval
        self._bound_interval = BOUND_POD_HOLD_INTERVAL if bound_interval is None else bound_interval
        self._held: dict[ObjectKey, tuple[float, int, Pod]] = {}
        self._bound: dict[ObjectKey, tuple[float, int, Pod]] = {}
        # The bound queue's (first version, key), a heap: entries whose pod left the queue
        # stay until they reach the top (`oldest_version` drops them there).
        self._bound_versions: list[tuple[int, ObjectKey]] = []

    def __len__(self) -> int:
        return len(self._held) + len(self._bound)

    def __contains__(self, key: object) -> bool:
        return key in self._held or key in self._bound

    def hold(self, key: ObjectKey, pod: Pod, now: float) -> None:
        """Hold `pod` (its latest version, if held before: the first hold's version stays,
        and its time while it stays in the same queue; a pod bound meanwhile moves to the
        bound queue, timed from now)."""
        if pod.node_name:
            was = self._bound.get(key)
            if was is not None:
                self._bound[key] = (was[0], was[1], pod)
                return
            first = self._held.pop(key, None)
            rv = pod.meta.resource_version if first is None else first[1]
            self._bound[key] = (now, rv, pod)
            heapq.heappush(self._bound_versions, (rv, key))
            return
        first = self._held.get(key)
        if first is None:
            self._held[key] = (now, pod.meta.resource_version, pod)
        else:
            self._held[key] = (first[0], first[1], pod)

    def take(self, key: ObjectKey) -> Pod | None:
        """The held version of `key`, no longer held (None: it was not)."""
        found = self._held.pop(key, None)
        if found is None:
            found = self._bound.pop(key, None)
        return None if found is None else found[2]

    def take_due(self, now: float) -> list[tuple[ObjectKey, Pod]]:
        """The pods held their queue's interval or longer, no longer held."""
        return _take_due(self._held, now, self._interval) + _take_due(
            self._bound, now, self._bound_interval
        )

    def take_all(self) -> list[tuple[ObjectKey, Pod]]:
        """Every held pod, none held after."""
        taken = [(key, pod) for key, (_, _, pod) in self._held.items()]
        taken += [(key, pod) for key, (_, _, pod) in self._bound.items()]
        self._held.clear()
        self._bound.clear()
        self._bound_versions.clear()
        return taken

    def next_due(self) -> float | None:
        """When (monotonic) the first held pod is due; None: none is held."""
        dues = [since + self._interval for since, _, _ in islice(self._held.values(), 1)]
        dues += [since + self._bound_interval for since, _, _ in islice(self._bound.values(), 1)]
        return min(dues, default=None)

    def oldest_version(self) -> int | None:
        """A resource version no held pod's is below (its first hold's); None: none held.
        (The bound queue is in binding order, not version order: its least is the heap's
        top once the tops of pods no longer held are dropped.)"""
        versions = [rv for _, rv, _ in islice(self._held.values(), 1)]
        heap, bound = self._bound_versions, self._bound
        while heap:
            rv, key = heap[0]
            entry = bound.get(key)
            if entry is not None and entry[1] == rv:
                versions.append(rv)
                break
            heapq.heappop(heap)
        return min(versions, default=None)


def _take_due(
    held: dict[ObjectKey, tuple[float, int, Pod]], now: float, interval: float
) -> list[tuple[ObjectKey, Pod]]:
    """The entries of `held` (in the order they were held) held `interval` or longer,
    taken out of it."""
    due: list[tuple[ObjectKey, Pod]] = []
    for key, (since, _, pod) in held.items():
        if now - since < interval:
            break
        due.append((key, pod))
    for key, _ in due:
        del held[key]
    return due
