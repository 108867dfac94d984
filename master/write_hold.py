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
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from master.model import POD_UNSCHEDULABLE, Pod, StoredObject
from master.store.port import ObjectKey

# How long the background flusher may hold newly logged events back from the store.
EVENT_STORE_INTERVAL = 5.0
# The kind held back.
HELD_KIND = "Event"
# How long the background flusher may hold a new pod back while it is not bound: a
# Deployment's 50,000 pods take ~5-10 s to create on a loaded master and the scheduler binds
# them once it has decided all (master/controllers/manager.py), ~10 s more at 5,000 nodes.
POD_HOLD_INTERVAL = 30.0


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


def holds_pod(pod: Pod, unstored: bool) -> bool:
    """Whether a put of `pod` waits among the held pods: it has no stored row (`unstored`:
    created since the last write took the queue, or held since), no node yet, and the
    scheduler has not found it none (then no binding is coming to merge with). A pod
    being deleted goes at once (its agent, if any, must hear of it)."""
    return (
        unstored
        and not pod.node_name
        and not pod.deletion_requested_at
        and pod.status.reason != POD_UNSCHEDULABLE
    )


class HeldPods:
    """New pods kept out of the write queue until bound (see the module docstring), in
    the order they were first held, each with when (monotonic) and at which resource
    version: so the ones due come off the front, and the oldest held version (what a
    write may call durable, `durable_mark`) is the first's, without a walk of all."""

    def __init__(self, interval: float | None = None) -> None:
        self._interval = POD_HOLD_INTERVAL if interval is None else interval
        self._held: dict[ObjectKey, tuple[float, int, Pod]] = {}

    def __len__(self) -> int:
        return len(self._held)

    def __contains__(self, key: object) -> bool:
        return key in self._held

    def hold(self, key: ObjectKey, pod: Pod, now: float) -> None:
        """Hold `pod` (its latest version, if held before: the first hold's time stays)."""
        first = self._held.get(key)
        if first is None:
            self._held[key] = (now, pod.meta.resource_version, pod)
        else:
            self._held[key] = (first[0], first[1], pod)

    def take(self, key: ObjectKey) -> Pod | None:
        """The held version of `key`, no longer held (None: it was not)."""
        found = self._held.pop(key, None)
        return None if found is None else found[2]

    def take_due(self, now: float) -> list[tuple[ObjectKey, Pod]]:
        """The pods held POD_HOLD_INTERVAL or longer, no longer held."""
        due: list[tuple[ObjectKey, Pod]] = []
        held = self._held
        for key, (since, _, pod) in held.items():
            if now - since < self._interval:
                break
            due.append((key, pod))
        for key, _ in due:
            del held[key]
        return due

    def take_all(self) -> list[tuple[ObjectKey, Pod]]:
        """Every held pod, none held after."""
        taken = [(key, pod) for key, (_, _, pod) in self._held.items()]
        self._held.clear()
        return taken

    def next_due(self) -> float | None:
        """When (monotonic) the first held pod is due; None: none is held."""
        for since, _, _ in self._held.values():
            return since + self._interval
        return None

    def oldest_version(self) -> int | None:
        """A resource version no held pod's is below (its first hold's); None: none held."""
        for _, rv, _ in self._held.values():
            return rv
        return None
