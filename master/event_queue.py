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
"""

from __future__ import annotations

from collections import deque
from typing import NamedTuple

# How long a queued event waits for its batch at most (unless someone reads events).
EVENT_WRITE_INTERVAL = 1.0


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
