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
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from master.model import StoredObject
from master.store.port import ObjectKey

# How long the background flusher may hold newly logged events back from the store.
EVENT_STORE_INTERVAL = 5.0
# The kind held back.
HELD_KIND = "Event"


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
