"""The queue events wait in before they are written, as Kubernetes' event recorder has.

client-go's recorder hands each event to a broadcaster (a bounded queue that drops
events when it is full, never blocking the controller that records them) and writes
them from its own goroutine. The master's hot paths record three events a pod (its
creation, its binding, its start): ClusterState.queue_event puts them here and
ClusterState.write_events writes them in a batch, at most EVENT_WRITE_INTERVAL later
or as soon as anyone reads events (a reader sees every event recorded before it read).

The queue holds as many events as the event log keeps (ClusterState's MAX_EVENTS):
one more pushes out the oldest, which the log would have trimmed before its batch was
over; the log then ends as it would have anyway, and the master spent nothing on an
event nobody could have read. Dropped events are counted and logged with their batch.

While events come faster than the log could keep for BURST_WRITE_INTERVAL (an apply
of 50,000 pods logs ~2,000 a second for most of a minute), the batches are that far
apart (`write_interval`): each one-second batch made 2,000 events (an object, its
managedFields, every state listener told, the one it trims removed and told too) that
the next batch trimmed unread, ~9 % of the master's CPU in the burst. Waiting, the
queue keeps the newest and drops the rest for free: the log after each batch holds the
same newest events it would have, a reader still sees every event recorded before it
read (a read writes the queue first), and an event goes to the store within ~5 s as
before (a burst's batch goes with the next background write: the store's hold of new
events, EVENT_STORE_INTERVAL in master/write_hold.py, would spare it only what the queue
already dropped). What changes is that a watcher of events gets them in batches up to
BURST_WRITE_INTERVAL apart while the burst lasts.
"""

from __future__ import annotations

from collections import deque
from typing import NamedTuple

# How long a queued event waits for its batch at most (unless someone reads events).
EVENT_WRITE_INTERVAL = 1.0
# ... and while events come faster than the log keeps them for this long (`write_interval`).
BURST_WRITE_INTERVAL = 5.0


def write_interval(arrived: int, seconds: float, capacity: int) -> float:
    """How long the next queued events wait for their batch: EVENT_WRITE_INTERVAL, or
    BURST_WRITE_INTERVAL while `arrived` events in the last `seconds` (queued and dropped,
    from one take to the next) come at `capacity` (the log's size) per BURST_WRITE_INTERVAL
    or faster: then the log turns over within that interval anyway, and a batch of the
    newest `capacity` is what it would hold after a batch every second. Judged over one
    EVENT_WRITE_INTERVAL at least: a reader's take of a few events just after a batch is
    no burst."""
    if arrived * BURST_WRITE_INTERVAL >= capacity * max(seconds, EVENT_WRITE_INTERVAL):
        return BURST_WRITE_INTERVAL
    return EVENT_WRITE_INTERVAL


class QueuedEvent(NamedTuple):
    """One event as recorded (ClusterState.record_event's arguments, and its time)."""

    kind: str
    name: str
    reason: str
    message: str
    type: str
    source: str
    namespace: str
    writer: str
    at: float


class EventQueue:
    """Events waiting to be written, oldest first, at most `capacity` of them."""

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self._events: deque[QueuedEvent] = deque(maxlen=capacity)
        # Dropped since the last take, and in all.
        self.dropped = 0
        self.dropped_total = 0

    def __len__(self) -> int:
        return len(self._events)

    def put(self, event: QueuedEvent) -> None:
        """Queue `event`; a full queue drops its oldest to make room."""
        if len(self._events) == self._events.maxlen:
            self.dropped += 1
            self.dropped_total += 1
        self._events.append(event)

    def take(self) -> list[QueuedEvent]:
        """Every queued event, oldest first; the queue is empty after."""
        taken = list(self._events)
        self._events.clear()
        self.dropped = 0
        return taken
