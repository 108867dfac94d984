"""The service table the nodes get: addresses, ready endpoints only, StatefulSet names, the wire."""

from __future__ import annotations

import asyncio
from dataclasses import replace

from agent.nodeproxy.table import Backend, ServiceTables, table_from_proto
from kernel.clock import FakeClock
from master.api.servicetable import ServiceTableFeed, table_to_proto
from master.app.apply import apply_objects
from master.lb.servicetable import TableEndpoint, compute_service_table
from master.model import (
    Container,
    ContainerPort,
    Node,
    NodeStatus,
    ObjectMeta,
    Pod,
    PodPhase,
    PodSpec,
    PodStatus,
    Resources,
    Service,
    ServicePort,
)
from master.state import ClusterState
from master.store import MemoryStore


def _pod(name: str, app: str, host_port: int, ready: bool = True, node: str = "n1") -> Pod:
    spec = PodSpec(containers=(Container(name="c", image="x", ports=(ContainerPort(6379),)),))
    return Pod(
        meta=ObjectMeta(name=name, labels={"app": app}),
        spec=spec,
        node_name=node,
        status=PodStatus(
            phase=PodPhase.RUNNING,
            ready=ready,
            host_ip="192.0.2.1",
            port_map={"6379/TCP": host_port},
        ),
    )


def _svc(name: str, ip: str, headless: bool = False) -> Service:
    return Service(
        meta=ObjectMeta(name=name),
        selector={"app": name},
        ports=(ServicePort(6379, "6379", name="redis"),),
        cluster_ip=ip,
        headless=headless,
    )


def test_each_service_lists_only_its_ready_endpoints_on_ready_nodes() -> None:
    pods = [
        _pod("leader-1", "leader", 31001),
        _pod("leader-2", "leader", 31002, ready=False),
        _pod("follower-1", "follower", 31003),
        _pod("follower-2", "follower", 31004, node="lost"),
        replace(_pod("leader-3", "leader", 31005), deletion_requested_at=3.0),
    ]
    services = [_svc("leader", "10.96.1.0"), _svc("follower", "10.96.1.1")]

    table = compute_service_table(services, pods, {"n1": True, "lost": False})

    assert [(s.name, s.cluster_ip) for s in table] == [
        ("follower", "10.96.1.1"),
        ("leader", "10.96.1.0"),
    ]
    assert [[e.port for e in p.endpoints] for s in table for p in s.ports] == [[31003], [31001]]
    assert table[0].ports[0].app_protocol == "tcp" and table[0].ports[0].name == "redis"


def test_a_headless_service_has_no_address_and_statefulset_pods_have_their_names() -> None:
    pod = replace(_pod("redis-0", "redis", 31000), owner="StatefulSet/redis")

    (entry,) = compute_service_table(
        [_svc("redis", "None", headless=True)],
        [pod],
        {"n1": True},
        {("default", "StatefulSet/redis"): "redis"},
    )

    assert (entry.cluster_ip, entry.headless) == ("", True)
    assert entry.ports[0].endpoints == (
        TableEndpoint("192.0.2.1", 31000, "redis-0", "n1", hostname="redis-0", subdomain="redis"),
    )


def test_a_service_without_selector_has_no_endpoints() -> None:
    svc = replace(_svc("external", "10.96.1.5"), selector={})

    (entry,) = compute_service_table([svc], [_pod("a", "x", 1)], {"n1": True})

    assert entry.ports[0].endpoints == ()


def test_the_table_crosses_the_wire_unchanged_and_repeats_are_dropped() -> None:
    pods = [replace(_pod("redis-0", "redis", 31000), owner="StatefulSet/redis")]
    table = compute_service_table(
        [_svc("redis", "10.96.1.0")],
        pods,
        {"n1": True},
        {("default", "StatefulSet/redis"): "redis"},
    )
    seen: list[int] = []
    tables = ServiceTables()
    tables.subscribe(lambda t: seen.append(t.version))

    received = table_from_proto(table_to_proto(7, table, "10.96.0.0/12"))
    tables.publish(received)
    # A new master starts counting again: the same content is no news, new content is.
    tables.publish(replace(received, version=1))
    tables.publish(replace(received, version=1, services=()))

    assert received.service_cidr == "10.96.0.0/12" and received.version == 7
    (svc,) = received.services
    assert (svc.name, svc.cluster_ip, svc.ports[0].port) == ("redis", "10.96.1.0", 6379)
    assert svc.ports[0].backends == (
        Backend("192.0.2.1", 31000, "redis-0", "n1", "redis-0", "redis"),
    )
    assert seen == [7, 1]


def test_the_feed_recomputes_once_per_change_and_bumps_the_version_only_on_news() -> None:
    state = ClusterState(MemoryStore(), FakeClock())
    feed = ServiceTableFeed(state)
    woken: list[int] = []
    unsubscribe = feed.on_stale(lambda: woken.append(1))

    empty = feed.current()
    asyncio.run(apply_objects(state, [_svc("leader", "")], 1.0))
    first = feed.current()
    again = feed.current()
    # A change to something the table does not show (a label) is no news.
    labelled = replace(_svc("leader", ""), meta=ObjectMeta(name="leader", labels={"x": "y"}))
    asyncio.run(apply_objects(state, [labelled], 2.0))
    same = feed.current()
    unsubscribe()
    asyncio.run(apply_objects(state, [_svc("follower", "")], 3.0))

    assert (empty.version, first.version, again.version, same.version) == (1, 2, 2, 2)
    assert [(s.name, s.cluster_ip) for s in first.services] == [("leader", "10.96.1.0")]
    assert first.service_cidr == "10.96.0.0/12"
    # Woken for the first apply (later ones within WAKE_INTERVAL are coalesced).
    assert woken


def test_publish_not_ready_addresses_lists_pods_before_they_are_ready_but_not_stopping() -> None:
    pods = [
        _pod("peer-0", "peer", 31000, ready=False),
        replace(_pod("peer-1", "peer", 31001, ready=False), deletion_requested_at=2.0),
    ]
    svc = replace(_svc("peer", "None", headless=True), publish_not_ready=True)

    (entry,) = compute_service_table([svc], pods, {"n1": True})
    (plain,) = compute_service_table([replace(svc, publish_not_ready=False)], pods, {"n1": True})

    assert [e.pod for e in entry.ports[0].endpoints] == ["peer-0"]
    assert plain.ports[0].endpoints == ()


def test_a_udp_port_carries_its_node_port_and_each_pod_its_container_address_over_the_wire() -> (
    None
):
    spec = PodSpec(
        containers=(Container(name="c", image="x", ports=(ContainerPort(5353, "UDP"),)),)
    )
    pod = Pod(
        meta=ObjectMeta(name="dns-1", labels={"app": "dns"}),
        spec=spec,
        node_name="n1",
        status=PodStatus(
            phase=PodPhase.RUNNING,
            ready=True,
            host_ip="192.0.2.1",
            port_map={"5353/UDP": 32001},
            pod_ip="172.17.0.5",
        ),
    )
    svc = Service(
        meta=ObjectMeta(name="dns"),
        selector={"app": "dns"},
        ports=(ServicePort(53, "5353", "UDP", "dns", 30053),),
        cluster_ip="10.96.0.10",
    )

    table = compute_service_table([svc], [pod], {"n1": True})
    (received,) = table_from_proto(table_to_proto(1, table, "10.96.0.0/12")).services

    (port,) = received.ports
    assert (port.protocol, port.port, port.node_port) == ("UDP", 53, 30053)
    assert port.backends == (
        Backend("192.0.2.1", 32001, "dns-1", "n1", pod_ip="172.17.0.5", target_port=5353),
    )


def test_a_node_known_before_the_feed_started_that_stops_serving_its_pods_is_news() -> None:
    """What a node was is told by the change's previous version: the feed needs no memory
    of its own, and a node already there when the master started is not taken for a new
    one (its pods' endpoints stayed in the table until something else changed)."""
    state = ClusterState(MemoryStore(), FakeClock())
    room = Resources(4000, 2**30)
    node = state.put(Node(ObjectMeta("n1"), "192.0.2.1", room, room, status=NodeStatus(ready=True)))
    state.put(_svc("redis", "10.96.0.10"))
    state.put(_pod("redis-a", "redis", 31000))
    feed = ServiceTableFeed(state)
    before = feed.current()
    woken: list[int] = []
    feed.on_stale(lambda: woken.append(1))

    state.put(replace(node, status=NodeStatus(ready=False)))
    after = feed.current()

    assert woken == [1]
    assert [len(p.endpoints) for p in before.services[0].ports] == [1]
    assert [len(p.endpoints) for p in after.services[0].ports] == [0]
    assert after.version == before.version + 1
