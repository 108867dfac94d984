"""The service table's wake-ups are coalesced: a stream of pod reports wakes each session
at most every WAKE_INTERVAL, and never while it has not looked at the last change."""

from __future__ import annotations

import asyncio
import time
from dataclasses import replace

from kernel.clock import FakeClock
from master.api.servicetable import WAKE_INTERVAL, ServiceTableFeed
from master.model import (
    ConfigMap,
    Container,
    ContainerPort,
    Node,
    NodeStatus,
    ObjectMeta,
    Pod,
    PodSpec,
    PodStatus,
    Resources,
    Service,
    ServicePort,
)
from master.state import ClusterState
from master.store.memory import MemoryStore


def _change(state: ClusterState, i: int) -> None:
    # Any change the table reads will do; a Service is the smallest to make.
    state.put(Service(meta=ObjectMeta(name=f"s{i}"), selector={"app": "a"}, ports=()))


def _node(name: str, ready: bool) -> Node:
    return Node(
        meta=ObjectMeta(name=name),
        address="10.0.0.1",
        capacity=Resources(1000, 2**30),
        allocatable=Resources(1000, 2**30),
        status=NodeStatus(ready=ready),
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
    # The later wake, within a deadline (a sleep of two intervals waited 2 s every run).
    deadline = time.monotonic() + 10 * WAKE_INTERVAL
    while len(wakes) < 2 and time.monotonic() < deadline:
        await asyncio.sleep(0.01)
    counts.append(len(wakes))
    return counts


def test_wakes_are_coalesced() -> None:
    assert asyncio.run(_scenario()) == [1, 1, 2]


def test_only_a_node_whose_pods_serve_that_stops_or_starts_serving_wakes_the_sessions() -> None:
    state = ClusterState(MemoryStore(), FakeClock())
    feed = ServiceTableFeed(state)
    wakes: list[int] = []
    feed.on_stale(lambda: wakes.append(1))
    feed.current()

    state.put(_node("n1", ready=False))  # joined
    state.put(_node("n1", ready=True))  # Ready: serving, but no pod of its own
    state.put(replace(_node("n1", ready=True), address="10.0.0.2"))  # nothing it serves
    assert wakes == []
    # A pod no Service selects: its node's readiness changes no endpoint, wakes nobody.
    state.put(Pod(meta=ObjectMeta(name="q"), spec=PodSpec(containers=()), node_name="n1"))
    state.put(_node("n1", ready=False))
    state.put(_node("n1", ready=True))
    assert wakes == []
    state.put(Service(ObjectMeta("web"), {"app": "web"}, (ServicePort(80, "80"),), cluster_ip="1"))
    container = Container(name="c", image="x", ports=(ContainerPort(80),))
    state.put(
        Pod(
            meta=ObjectMeta(name="p", labels={"app": "web"}),
            spec=PodSpec(containers=(container,)),
            node_name="n1",
            status=PodStatus(ready=True, host_ip="10.0.0.2", port_map={"80/TCP": 31000}),
        )
    )
    feed.current()
    wakes.clear()
    state.put(_node("n1", ready=False))  # NotReady: its pod's endpoint goes

    assert wakes == [1]
    assert [len(p.endpoints) for p in feed.current().services[0].ports] == [0]


def test_without_a_selecting_service_the_table_reads_no_pod() -> None:
    # Each recompute read every pod and node (50,000 and 5,000 at scale) to find no endpoint.
    state = ClusterState(MemoryStore(), FakeClock())
    state.put(Service(meta=ObjectMeta(name="kubernetes"), selector={}, ports=()))
    state.put(Pod(meta=ObjectMeta(name="p", labels={"app": "a"}), spec=PodSpec(containers=())))
    feed = ServiceTableFeed(state)

    def unread(namespace: str | None = None) -> list[Pod]:
        raise AssertionError("the pods were read")

    state.pods = unread  # type: ignore[method-assign]
    (entry,) = feed.current().services
    assert entry.name == "kubernetes"
