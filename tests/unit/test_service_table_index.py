"""The service table kept by each change (master/lb/servicetable_index.py) equals the full
computation it replaces (compute_service_table over every Service, pod, node and
StatefulSet), and the feed's wire message equals the full table's, after any sequence of
changes: pods created, relabelled, bound, made ready, given ports, stopped, removed;
nodes made serving or not, given subnets, removed; Services with and without selectors,
their ports, publishNotReadyAddresses and addresses changed, removed; StatefulSets
naming their pods' Service; and another master's state taking over (replace_all)."""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import replace

import pytest

from kernel.clock import FakeClock
from master.api.servicetable import ServiceTableFeed, table_to_proto
from master.lb.servicetable import TableService, compute_service_table
from master.lb.servicetable_index import Lookups, ServiceTableIndex
from master.model import (
    NODE_UNKNOWN,
    Container,
    ContainerPort,
    Node,
    NodeStatus,
    ObjectMeta,
    Pod,
    PodSpec,
    PodStatus,
    PodTemplate,
    Resources,
    Service,
    ServicePort,
    StatefulSet,
    StoredObject,
)
from master.state import ClusterState
from master.store import MemoryStore

NAMESPACES = ("default", "other")
NODES = ("n0", "n1", "n2", "gone")
APPS = ("a", "b")


def _pod(rng: random.Random) -> Pod:
    ports = (ContainerPort(80, name="http"), ContainerPort(81))
    return Pod(
        meta=ObjectMeta(
            name=f"p{rng.randrange(30)}",
            namespace=rng.choice(NAMESPACES),
            labels={"app": rng.choice(APPS)},
        ),
        spec=PodSpec(containers=(Container(name="c", image="x", ports=ports),)),
        owner=rng.choice(["", "web", "StatefulSet/db", "StatefulSet/cache"]),
    )


def _status(rng: random.Random) -> PodStatus:
    return PodStatus(
        ready=rng.random() < 0.7,
        # 127.0.0.1: a node publishing on loopback, whose pods the master's HAProxy reaches
        # at their own IPs (master/lb/endpoints.py lb_address).
        host_ip=rng.choice(["192.0.2.1", "192.0.2.2", "127.0.0.1", ""]),
        port_map=rng.choice([{}, {"80/TCP": 31000}, {"80/TCP": 31001, "81/TCP": 31002}]),
        pod_ip=rng.choice(["", "10.244.0.5"]),
    )


def _node(rng: random.Random) -> Node:
    room = Resources(1000, 2**30)
    ready = rng.random() < 0.6
    return Node(
        meta=ObjectMeta(name=rng.choice(NODES[:3])),
        address=rng.choice(["192.0.2.1", "192.0.2.2"]),
        capacity=room,
        allocatable=room,
        status=NodeStatus(ready=ready, reason="" if ready else rng.choice(["", NODE_UNKNOWN])),
        pod_cidr=rng.choice(["", "10.244.1.0/24", "10.244.2.0/24"]),
    )


def _service(rng: random.Random) -> Service:
    ports = tuple(
        ServicePort(port, rng.choice(["80", "http", "81", "82"]), name=f"p{port}")
        for port in rng.sample([80, 443, 8080], rng.randrange(1, 3))
    )
    return Service(
        meta=ObjectMeta(name=rng.choice(["web", "api", "db"]), namespace=rng.choice(NAMESPACES)),
        selector=rng.choice([{}, {"app": "a"}, {"app": "b"}]),
        ports=ports,
        cluster_ip=rng.choice(["10.96.0.10", "10.96.0.11"]),
        headless=rng.random() < 0.2,
        publish_not_ready=rng.random() < 0.3,
        lb_message=rng.choice(["", "serving"]),
    )


def _statefulset(rng: random.Random) -> StatefulSet:
    return StatefulSet(
        meta=ObjectMeta(name=rng.choice(["db", "cache"]), namespace=rng.choice(NAMESPACES)),
        replicas=1,
        selector={"app": "a"},
        template=PodTemplate(labels={"app": "a"}, spec=PodSpec(containers=())),
        service_name=rng.choice(["", "db", "web"]),
    )


def _step(rng: random.Random, state: ClusterState) -> None:
    pods = state.pods()
    roll = rng.random()
    if roll < 0.2 or not pods:
        state.put(_pod(rng))
    elif roll < 0.45:
        state.put(replace(rng.choice(pods), status=_status(rng)))
    elif roll < 0.52:
        state.put(replace(rng.choice(pods), node_name=rng.choice([*NODES, ""])))
    elif roll < 0.57:
        pod = rng.choice(pods)
        labels = {"app": rng.choice(APPS)}
        state.put(replace(pod, meta=replace(pod.meta, labels=labels)))
    elif roll < 0.61:
        state.put(replace(rng.choice(pods), deletion_requested_at=rng.choice([0.0, 5.0])))
    elif roll < 0.66:
        pod = rng.choice(pods)
        state.remove("Pod", pod.meta.name, pod.meta.namespace)
    elif roll < 0.76:
        state.put(_node(rng))
    elif roll < 0.79:
        state.remove("Node", rng.choice(NODES[:3]))
    elif roll < 0.88:
        state.put(_service(rng))
    elif roll < 0.91:
        state.remove("Service", rng.choice(["web", "api", "db"]), rng.choice(NAMESPACES))
    elif roll < 0.96:
        state.put(_statefulset(rng))
    elif roll < 0.98:
        state.remove("StatefulSet", rng.choice(["db", "cache"]), rng.choice(NAMESPACES))
    else:
        # Another master's view takes over: some objects changed, some gone.
        rv = state.resource_version
        view: list[StoredObject] = []
        for kind in ("Pod", "Node", "Service", "StatefulSet"):
            for obj in state.objects(kind):
                if rng.random() < 0.1:
                    continue
                if isinstance(obj, Pod) and rng.random() < 0.3:
                    rv += 1
                    obj = replace(obj, meta=replace(obj.meta, resource_version=rv))
                    obj = replace(obj, status=_status(rng))
                view.append(obj)
        state.replace_all(view, rv + 1)


def _serving(state: ClusterState) -> Callable[[str], bool]:
    def serving(name: str) -> bool:
        node = state.get("Node", name)
        return isinstance(node, Node) and node.status.serving

    return serving


def _full(state: ClusterState) -> tuple[TableService, ...]:
    services = [s for s in state.objects("Service") if isinstance(s, Service)]
    nodes = [n for n in state.objects("Node") if isinstance(n, Node)]
    sets = [s for s in state.objects("StatefulSet") if isinstance(s, StatefulSet)]
    return compute_service_table(
        services,
        state.pods(),
        {n.meta.name: n.status.serving for n in nodes},
        {(s.meta.namespace, s.owner): s.service_name for s in sets if s.service_name},
    )


@pytest.mark.parametrize("seed", range(20))
def test_the_kept_table_equals_the_full_computation_after_random_changes(seed: int) -> None:
    rng = random.Random(seed)
    state = ClusterState(MemoryStore(), FakeClock())
    # Some state before the feed exists (its index starts from it), then changes after.
    for _ in range(40):
        _step(rng, state)
    index = ServiceTableIndex(
        [s for s in state.objects("Service") if isinstance(s, Service)],
        [s for s in state.objects("StatefulSet") if isinstance(s, StatefulSet)],
        Lookups(state.pods, state.pods_on_node, state.pods_of_owner, _serving(state)),
    )

    def told(kind: str, obj: StoredObject, deleted: bool, previous: StoredObject | None) -> None:
        index.on_change(obj, deleted, previous)

    state.subscribe(told)
    feed = ServiceTableFeed(state)
    woken: list[int] = []
    feed.on_stale(lambda: woken.append(1))
    last = feed.current()
    for i in range(400):
        _step(rng, state)
        if i % 5 and i != 399:
            continue
        full = _full(state)
        assert index.table() == full
        message = feed.current()
        expected = table_to_proto(message.version, full, message.service_cidr)
        assert list(message.services) == list(expected.services)
        if list(message.services) != list(last.services):
            assert message.version > last.version
        last = message
    assert woken


def test_a_status_report_that_changes_no_endpoint_wakes_no_session() -> None:
    state = ClusterState(MemoryStore(), FakeClock())
    room = Resources(1000, 2**30)
    state.put(Node(ObjectMeta("n0"), "192.0.2.1", room, room, status=NodeStatus(ready=True)))
    state.put(Service(ObjectMeta("web"), {"app": "a"}, (ServicePort(80, "80"),), cluster_ip="1"))
    rng = random.Random(1)
    pod = state.put(
        replace(
            _pod(rng),
            meta=ObjectMeta("p", labels={"app": "a"}),
            node_name="n0",
            status=PodStatus(ready=True, host_ip="192.0.2.1", port_map={"80/TCP": 31000}),
        )
    )
    feed = ServiceTableFeed(state)
    woken: list[int] = []
    feed.on_stale(lambda: woken.append(1))
    first = feed.current()

    state.put(replace(pod, status=replace(pod.status, started_at=5.0)))
    assert woken == [] and feed.current() is first
    state.put(replace(pod, status=replace(pod.status, ready=False)))
    assert woken == [1]
    assert [len(p.endpoints) for p in feed.current().services[0].ports] == [0]
