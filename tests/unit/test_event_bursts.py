"""Event batches further apart through a burst (master/event_queue.py `write_interval`).

While events come faster than the log keeps them for BURST_WRITE_INTERVAL, the event writer
waits that long for its batch and the queue drops all but the newest: what a reader sees
is unchanged (a read writes the queue first), a node's event recorded meanwhile waits in
the queue behind the others instead of writing them all, and a burst's batch goes to the
store with the next background write (not held back again: write_hold.py).
"""

from __future__ import annotations

import asyncio

from kernel.clock import FakeClock
from master.event_queue import BURST_WRITE_INTERVAL, EVENT_WRITE_INTERVAL, write_interval
from master.model import Event
from master.state import MAX_EVENTS, ClusterState
from master.store import MemoryStore
from tests.unit.test_event_queue import _event_puts


def test_the_interval_stretches_only_while_events_outrun_the_log() -> None:
    # The log keeps 2,000: at 400 a second it turns over within 5 s.
    assert write_interval(2000, 1.0, 2000) == BURST_WRITE_INTERVAL
    assert write_interval(400, 1.0, 2000) == BURST_WRITE_INTERVAL
    assert write_interval(2000, 5.0, 2000) == BURST_WRITE_INTERVAL
    assert write_interval(399, 1.0, 2000) == EVENT_WRITE_INTERVAL
    assert write_interval(1000, 5.0, 2000) == EVENT_WRITE_INTERVAL  # the burst is over
    # A reader's take of a few events just after a batch: no burst.
    assert write_interval(20, 0.01, 2000) == EVENT_WRITE_INTERVAL


def _second_of_events(state: ClusterState, clock: FakeClock, start: int, count: int) -> None:
    """`count` pods' Scheduled events within one second."""
    for i in range(start, start + count):
        state.queue_event("Pod", f"web-{i}", "Scheduled", f"assigned web-{i} to n1")
    clock.advance(EVENT_WRITE_INTERVAL)


async def _writer_through_a_burst() -> tuple[int, int, int, float]:
    """A 10 s burst of MAX_EVENTS events a second under the event writer: the events it made
    in the first second, in all, and once a reader read; the interval at the end."""
    clock = FakeClock()
    state = ClusterState(MemoryStore(), clock)
    told = _event_puts(state)
    writer = asyncio.create_task(state.run_event_writer())

    async def turns() -> None:
        for _ in range(50):
            await asyncio.sleep(0)

    try:
        await turns()
        made_first = 0
        for second in range(10):
            state.queue_event("Pod", f"web-{second}", "Scheduled", "first of the second")
            await turns()  # the writer waits on the clock
            _second_of_events(state, clock, second * MAX_EVENTS + 1, MAX_EVENTS - 1)
            await turns()  # the writer's batch, when due
            if second == 0:
                made_first = len(told)
        made = len(told)
        state.objects("Event")  # a reader: everything queued before it is in the log
        return made_first, made, len(told), state.event_write_interval
    finally:
        writer.cancel()


def test_a_burst_makes_a_batch_every_burst_interval_and_a_reader_still_sees_all() -> None:
    made_first, made, after_read, interval = asyncio.run(_writer_through_a_burst())

    assert made_first == MAX_EVENTS  # the first second: the usual one-second batch
    # Then one batch of the newest MAX_EVENTS every 5 s: at 6 s, the next due at 11 s (a
    # batch a second made ten in these 10 s).
    assert made == 2 * MAX_EVENTS
    assert after_read == 3 * MAX_EVENTS  # the read wrote what the queue held
    assert interval == BURST_WRITE_INTERVAL


def _in_a_burst() -> tuple[ClusterState, FakeClock]:
    clock = FakeClock()
    state = ClusterState(MemoryStore(), clock)
    _second_of_events(state, clock, 0, MAX_EVENTS)
    state.write_events()
    assert state.event_write_interval == BURST_WRITE_INTERVAL
    return state, clock


def test_a_node_event_in_a_burst_waits_behind_the_queued_ones_and_a_read_shows_both() -> None:
    state, _ = _in_a_burst()
    told = _event_puts(state)
    state.queue_event("Pod", "web-x", "Started", "pod web-x is running")

    state.record_event("Node", "n1", "NodeNotReady", "no heartbeat")
    written_then = len(told)
    log = [(e.involved_name, e.reason) for e in state.objects("Event") if isinstance(e, Event)]

    assert written_then == 0  # queued behind the burst's, not writing them all
    assert log[-2:] == [("web-x", "Started"), ("n1", "NodeNotReady")]  # in order


def test_out_of_a_burst_a_node_event_is_logged_at_once() -> None:
    state = ClusterState(MemoryStore(), FakeClock())
    told = _event_puts(state)
    state.queue_event("Pod", "web-x", "Started", "pod web-x is running")

    state.record_event("Node", "n1", "NodeNotReady", "no heartbeat")

    assert [e.reason for e in told] == ["Started", "NodeNotReady"]


async def _burst_batch_stored() -> set[str]:
    state, clock = _in_a_burst()
    store = state._store  # the MemoryStore the state writes to
    await state.flush(hold_events=True)  # the background flusher's write
    clock.advance(0.1)
    return {o.meta.name for o in store.load_all() if isinstance(o, Event)}


def test_a_burst_batch_goes_with_the_next_background_write() -> None:
    stored = asyncio.run(_burst_batch_stored())

    assert len(stored) == MAX_EVENTS
