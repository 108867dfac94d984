"""Events recorded off the hot path (ClusterState.queue_event, master/event_queue.py).

What a user relies on stays: every event queued before a read is in what the read
returns, in order, counted and combined as record_event counts and combines them; the
log after a burst is the log record_event would have left. What changes is the cost:
a burst's repeats are one write, and events the bounded log would trim before anyone
could read them are never written.
"""

from __future__ import annotations

import asyncio

import pytest

from kernel.clock import FakeClock
from master.event_queue import EVENT_WRITE_INTERVAL, EventQueue, QueuedEvent
from master.model import Event, StoredObject
from master.similar_events import COMBINED_PREFIX
from master.state import MAX_EVENTS, ClusterState
from master.store import MemoryStore
from master.store.port import NotLeaderError


def _log(state: ClusterState) -> list[tuple[str, str, str, int]]:
    return [
        (e.involved_name, e.reason, e.message, e.count)
        for e in state.objects("Event")
        if isinstance(e, Event)
    ]


def _event_puts(state: ClusterState) -> list[Event]:
    told: list[Event] = []

    def listen(kind: str, obj: StoredObject, deleted: bool, previous: StoredObject | None) -> None:
        if isinstance(obj, Event) and not deleted:
            told.append(obj)

    state.subscribe(listen)
    return told


def _burst(state: ClusterState, record: str, pods: int) -> None:
    """What a deployment scaled to `pods` causes: created, scheduled and started events."""
    for i in range(pods):
        getattr(state, record)("Deployment", "web", "SuccessfulCreate", f"created pod web-{i}")
        getattr(state, record)("Pod", f"web-{i}", "Scheduled", f"assigned web-{i} to n1")
    for i in range(pods):
        getattr(state, record)("Pod", f"web-{i}", "Started", f"pod web-{i} is running")


def test_queued_events_are_read_at_once_in_order_counted_and_combined() -> None:
    queued, recorded = (
        ClusterState(MemoryStore(), FakeClock()),
        ClusterState(MemoryStore(), FakeClock()),
    )
    for state, record in ((queued, "queue_event"), (recorded, "record_event")):
        _burst(state, record, 30)
        getattr(state, record)("Pod", "web-3", "Started", "pod web-3 is running")  # a repeat

    # The same events, counts and messages; an event counted into in a batch moves to the
    # end of it (written once, at its end), where each count moved it before.
    assert sorted(_log(queued)) == sorted(_log(recorded))
    created = [e for e in _log(queued) if e[1] == "SuccessfulCreate"]
    assert created[-1] == ("web", "SuccessfulCreate", COMBINED_PREFIX + "created pod web-29", 21)
    assert ("web-3", "Started", "pod web-3 is running", 2) in _log(queued)


def test_every_read_sees_what_was_queued_before_it() -> None:
    state = ClusterState(MemoryStore(), FakeClock())
    state.queue_event("Pod", "web-1", "Scheduled", "assigned web-1 to n1")
    assert state.count("Event") == 1
    state.queue_event("Pod", "web-2", "Scheduled", "assigned web-2 to n1")
    (second,) = [e for e in state.objects("Event", "default") if e.meta.name.startswith("web-2")]
    state.queue_event("Pod", "web-2", "Scheduled", "assigned web-2 to n1")
    again = state.get_key("Event", f"default/{second.meta.name}")
    assert isinstance(again, Event) and again.count == 2


def test_a_burst_folds_its_repeats_into_one_write_of_each_event() -> None:
    state = ClusterState(MemoryStore(), FakeClock())
    told = _event_puts(state)

    for i in range(500):
        state.queue_event("Deployment", "web", "SuccessfulCreate", f"created pod web-{i}")
    assert told == []  # nothing written before the batch
    state.write_events()

    combined = [e for e in told if e.message.startswith(COMBINED_PREFIX)]
    assert [e.count for e in combined] == [1, 491]  # made, then counted into once
    assert len(told) == 11  # nine alone, one counting the rest (two writes)
    assert _log(state)[-1] == (
        "web",
        "SuccessfulCreate",
        COMBINED_PREFIX + "created pod web-499",
        491,
    )


def test_a_burst_longer_than_the_log_writes_only_what_the_log_keeps() -> None:
    queued, recorded = (
        ClusterState(MemoryStore(), FakeClock()),
        ClusterState(MemoryStore(), FakeClock()),
    )
    told = _event_puts(queued)
    pods = MAX_EVENTS  # three events each: more than the log keeps
    for state, record in ((queued, "queue_event"), (recorded, "record_event")):
        _burst(state, record, pods)

    # The newest MAX_EVENTS are the log either way; the others were never written.
    assert sorted(_log(queued)) == sorted(_log(recorded))
    assert len(_log(queued)) == MAX_EVENTS
    assert len(told) == MAX_EVENTS
    assert queued.events_dropped == 3 * pods - MAX_EVENTS


def test_record_event_writes_the_queued_ones_first() -> None:
    state = ClusterState(MemoryStore(), FakeClock())
    state.queue_event("Pod", "web-1", "Scheduled", "assigned web-1 to n1")
    state.record_event("Pod", "web-1", "Killing", "stopping pod web-1")
    assert [e[1] for e in _log(state)] == ["Scheduled", "Killing"]


def test_the_event_writer_writes_queued_events_within_its_interval_unread() -> None:
    async def scenario() -> None:
        clock = FakeClock()
        state = ClusterState(MemoryStore(), clock)
        told = _event_puts(state)
        writer = asyncio.create_task(state.run_event_writer())
        try:
            state.queue_event("Pod", "web-1", "Started", "pod web-1 is running")
            while clock.sleepers == 0:
                await asyncio.sleep(0)
            assert told == []
            clock.advance(EVENT_WRITE_INTERVAL)
            for _ in range(100):
                if told:
                    break
                await asyncio.sleep(0)
            assert [e.reason for e in told] == ["Started"]
        finally:
            writer.cancel()

    asyncio.run(scenario())


def test_a_follower_refuses_and_a_deposed_master_drops_what_it_queued() -> None:
    state = ClusterState(MemoryStore(), FakeClock())
    refusal: list[str] = []
    state.set_write_gate(lambda: refusal[0] if refusal else None)
    state.queue_event("Pod", "web-1", "Started", "pod web-1 is running")
    refusal.append("this master is a follower")

    with pytest.raises(NotLeaderError):
        state.queue_event("Pod", "web-2", "Started", "pod web-2 is running")
    state.write_events()  # deposed: no error, nothing written
    assert _log(state) == []


def test_a_full_queue_drops_its_oldest_and_counts_them() -> None:
    queue = EventQueue(3)
    for i in range(5):
        queue.put(QueuedEvent("Pod", f"p{i}", "Started", "", "Normal", "master", "", "", 0.0))
    assert [e.name for e in queue.take()] == ["p2", "p3", "p4"]
    assert (queue.dropped, queue.dropped_total, len(queue)) == (0, 2, 0)


def test_a_refused_commit_that_records_an_event_keeps_the_queued_ones() -> None:
    state = ClusterState(MemoryStore(), FakeClock())
    state.queue_event("Pod", "web-1", "Started", "pod web-1 is running")

    def refused() -> None:
        state.record_event("Deployment", "web", "ScalingReplicaSet", "scaled up to 3")
        raise ValueError("refused")

    with pytest.raises(ValueError):
        asyncio.run(state.commit(refused))

    assert _log(state) == [("web-1", "Started", "pod web-1 is running", 1)]
