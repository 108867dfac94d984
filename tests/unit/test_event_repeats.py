"""A repeated event (same object, reason and message within ten minutes) counts up.

ClusterState looks for the repeat among the most recent events, and not at all
when no event in memory is about the object (an index by involved object kept
with the event log). These tests fail if that index ever says "none" while an
event about the object is there: after events come and go, are trimmed, or
arrive from the store or another master.
"""

from __future__ import annotations

import asyncio
from dataclasses import replace
from typing import Any

from kernel.clock import FakeClock
from master.model import Event, ObjectMeta, key_of
from master.state import MAX_EVENTS, ClusterState
from master.store import MemoryStore


def _logged(state: ClusterState, *args: Any, **kwargs: Any) -> Event:
    """record_event's event as logged (out of a burst it always is: event_queue.py)."""
    event = state.record_event(*args, **kwargs)
    assert event is not None
    return event


def _about(state: ClusterState, name: str) -> list[Event]:
    return [e for e in state.objects("Event") if isinstance(e, Event) and e.involved_name == name]


def test_a_repeat_counts_up_and_another_object_or_message_does_not() -> None:
    state = ClusterState(MemoryStore(), FakeClock())
    state.record_event("Pod", "web-1", "Scheduled", "assigned web-1 to n1")
    state.record_event("Pod", "web-2", "Scheduled", "assigned web-1 to n1")
    state.record_event("Pod", "web-1", "Scheduled", "assigned web-1 to n1")
    state.record_event("Pod", "web-1", "Scheduled", "assigned web-1 to n2")
    (first, moved) = _about(state, "web-1")
    assert (first.count, moved.count) == (2, 1)
    assert [e.count for e in _about(state, "web-2")] == [1]
    state.record_event("Pod", "web-1", "Killing", "stop", namespace="other")
    state.record_event("Pod", "web-1", "Killing", "stop", namespace="other")
    assert [e.count for e in _about(state, "web-1") if e.meta.namespace == "other"] == [2]


def test_a_removed_event_is_not_counted_into_and_a_new_one_is() -> None:
    state = ClusterState(MemoryStore(), FakeClock())
    event = _logged(state, "Node", "n1", "NodeNotReady", "no heartbeat")
    state.remove_key("Event", key_of(event))
    again = _logged(state, "Node", "n1", "NodeNotReady", "no heartbeat")
    assert again.count == 1
    assert _logged(state, "Node", "n1", "NodeNotReady", "no heartbeat").count == 2


def test_trimming_the_log_keeps_repeats_of_the_events_still_in_it() -> None:
    clock = FakeClock()
    state = ClusterState(MemoryStore(), clock)
    state.record_event("Pod", "old", "Started", "started")
    for i in range(MAX_EVENTS):
        state.record_event("Pod", f"p{i}", "Started", "started")
    assert not _about(state, "old")  # trimmed
    assert _logged(state, "Pod", "old", "Started", "started").count == 1
    last = f"p{MAX_EVENTS - 1}"
    assert _logged(state, "Pod", last, "Started", "started").count == 2


def test_events_from_the_store_and_from_another_master_are_counted_into() -> None:
    clock = FakeClock()
    store = MemoryStore()
    writer = ClusterState(store, clock)
    asyncio.run(writer.load())
    stored = _logged(writer, "Pod", "web-1", "Pulled", "pulled nginx")
    asyncio.run(writer.flush())

    loaded = ClusterState(store, clock)
    asyncio.run(loaded.load())
    assert _logged(loaded, "Pod", "web-1", "Pulled", "pulled nginx").count == 2

    mirror = ClusterState(MemoryStore(), clock)
    mirror.apply_remote(replace(stored, meta=replace(stored.meta, resource_version=9)))
    assert _logged(mirror, "Pod", "web-1", "Pulled", "pulled nginx").count == 2
    now = clock.now()
    other = Event(
        ObjectMeta(name="x.1"), "Pod", "web-2", "Pulled", "pulled nginx", count=4, last_seen=now
    )
    mirror.replace_all([other], 20)  # the first event is gone, another object's came
    assert _logged(mirror, "Pod", "web-1", "Pulled", "pulled nginx").count == 1
    assert _logged(mirror, "Pod", "web-2", "Pulled", "pulled nginx").count == 5
