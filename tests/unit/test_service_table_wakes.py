"""The service table's wake-ups are coalesced: a stream of pod reports wakes each session
at most every WAKE_INTERVAL, and never while it has not looked at the last change."""

from __future__ import annotations

import asyncio

from kernel.clock import FakeClock
from master.api.servicetable import WAKE_INTERVAL, ServiceTableFeed
from master.model import ConfigMap, Node, ObjectMeta, Resources
from master.state import ClusterState
from master.store.memory import MemoryStore


def _change(state: ClusterState, i: int) -> None:
    # Any watched kind will do; a Node is the smallest to make.
    state.put(
        Node(
            meta=ObjectMeta(name=f"n{i}"),
            address="10.0.0.1",
            capacity=Resources(1000, 2**30),
            allocatable=Resources(1000, 2**30),
        )
    )


async def _scenario() -> list[int]:
    state = ClusterState(MemoryStore(), FakeClock())
    feed = ServiceTableFeed(state)
    wakes: list[int] = []
    feed.on_stale(lambda: wakes.append(1))
    feed.current()  # a session looked: the table is fresh
    counts = []
    _change(state, 0)  # wakes at once
    _change(state, 1)  # nobody looked yet: no second wake
    counts.append(len(wakes))
    feed.current()
    _change(state, 2)  # within the interval of the last wake: later
    state.put(ConfigMap(meta=ObjectMeta(name="ignored")))  # not watched
    counts.append(len(wakes))
    await asyncio.sleep(WAKE_INTERVAL * 2)
    counts.append(len(wakes))
    return counts


def test_wakes_are_coalesced() -> None:
    assert asyncio.run(_scenario()) == [1, 1, 2]
