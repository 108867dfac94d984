"""Pod subnets per node from --cluster-cidr (master/app/podcidr.py), and the master's part:
a registering node gets one, keeps it, and every agent's table lists them."""

from __future__ import annotations

import asyncio
import ipaddress
from typing import Any

import pytest

from kernel.clock import FakeClock
from master.api.node_servicer import NodeServicer
from master.api.render import render_object
from master.api.servicetable import ServiceTableFeed
from master.app.podcidr import PodCidrError, node_pod_cidr, parse_cluster_cidr
from master.controllers.manager import ControllerManager
from master.controllers.nodes import LeaseTable
from master.model import Event, Node
from master.state import ClusterState
from master.store import MemoryStore
from protos import node_pb2

RANGE = ipaddress.IPv4Network("10.244.0.0/22")


def test_a_node_gets_the_lowest_free_subnet_and_keeps_its_own() -> None:
    assert node_pod_cidr(RANGE, 24, "", []) == "10.244.0.0/24"
    assert node_pod_cidr(RANGE, 24, "", ["10.244.0.0/24", "10.244.2.0/24"]) == "10.244.1.0/24"
    # Its own, still in the range and held by no other node: kept.
    assert node_pod_cidr(RANGE, 24, "10.244.3.0/24", ["10.244.0.0/24"]) == "10.244.3.0/24"


def test_a_subnet_outside_the_range_or_of_another_size_or_taken_is_replaced() -> None:
    assert node_pod_cidr(RANGE, 24, "10.9.0.0/24", []) == "10.244.0.0/24"
    assert node_pod_cidr(RANGE, 25, "10.244.1.0/24", []) == "10.244.0.0/25"
    assert node_pod_cidr(RANGE, 24, "10.244.1.0/24", ["10.244.1.0/24"]) == "10.244.0.0/24"


def test_a_full_range_gives_none() -> None:
    taken = [f"10.244.{i}.0/24" for i in range(4)]

    assert node_pod_cidr(RANGE, 24, "", taken) == ""


@pytest.mark.parametrize(
    ("text", "mask", "says"),
    [
        ("10.244.0.0/33", 24, "--cluster-cidr 10.244.0.0/33: not a network in CIDR form"),
        ("10.244.0.1/16", 24, "--cluster-cidr 10.244.0.1/16: not a network in CIDR form"),
        ("fd00::/64", 24, "--cluster-cidr fd00::/64: only IPv4 pod ranges are supported"),
        ("10.244.0.0/16", 12, "--node-cidr-mask-size 12: node subnets must fit in"),
        ("10.244.0.0/16", 30, "--node-cidr-mask-size 30: give 8 to 28"),
        ("10.0.0.0/8", 28, "more than 65536 node subnets"),
    ],
)
def test_bad_flags_are_one_sentence(text: str, mask: int, says: str) -> None:
    with pytest.raises(PodCidrError) as caught:
        parse_cluster_cidr(text, mask)

    assert says in str(caught.value)


def _info(name: str, address: str) -> node_pb2.NodeInfo:
    return node_pb2.NodeInfo(
        name=name,
        address=address,
        capacity=node_pb2.Resources(cpu_millis=2000, memory_bytes=2**30),
        allocatable=node_pb2.Resources(cpu_millis=2000, memory_bytes=2**30),
    )


def _servicer(cluster: str | None) -> tuple[ClusterState, NodeServicer]:
    clock = FakeClock()
    state = ClusterState(MemoryStore(), clock)
    if cluster:
        state.cluster_cidr = ipaddress.IPv4Network(cluster)
    leases = LeaseTable()
    servicer = NodeServicer(state, leases, ControllerManager(state, clock, leases), clock, 1, 3)
    return state, servicer


def _register(servicer: NodeServicer, name: str, address: str) -> str:
    context: Any = None
    request = node_pb2.RegisterNodeRequest(node=_info(name, address))
    return asyncio.run(servicer.RegisterNode(request, context)).pod_cidr


def test_registration_gives_each_node_its_subnet_which_it_keeps_and_the_table_lists() -> None:
    state, servicer = _servicer("10.244.0.0/23")

    first = _register(servicer, "n1", "192.168.1.10")
    second = _register(servicer, "n2", "192.168.1.11")
    again = _register(servicer, "n1", "192.168.1.12")  # a restarted agent, a new address
    full = _register(servicer, "n3", "192.168.1.13")

    assert (first, second, again, full) == ("10.244.0.0/24", "10.244.1.0/24", first, "")
    node = state.get("Node", "n1")
    assert isinstance(node, Node)
    spec = render_object(node, 0.0)["spec"]
    assert spec["podCIDR"] == first and spec["podCIDRs"] == [first]
    warnings = [
        e for e in state.objects("Event") if isinstance(e, Event) and e.reason == "CIDRNotAvailable"
    ]
    assert [w.involved_name for w in warnings] == ["n3"]
    assert warnings[0].type == "Warning"
    table = ServiceTableFeed(state).current()
    assert table.cluster_cidr == "10.244.0.0/23"
    assert [(s.node, s.address, s.pod_cidr) for s in table.node_subnets] == [
        ("n1", "192.168.1.12", first),
        ("n2", "192.168.1.11", second),
    ]


def test_without_a_cluster_cidr_nodes_get_no_subnet() -> None:
    state, servicer = _servicer(None)

    assert _register(servicer, "n1", "192.168.1.10") == ""
    node = state.get("Node", "n1")
    assert isinstance(node, Node)
    assert "podCIDR" not in render_object(node, 0.0)["spec"]
    table = ServiceTableFeed(state).current()
    assert table.cluster_cidr == "" and not table.node_subnets


def test_a_node_given_a_subnet_wakes_the_sessions() -> None:
    state, servicer = _servicer("10.244.0.0/23")
    feed = ServiceTableFeed(state)
    wakes: list[int] = []
    feed.on_stale(lambda: wakes.append(1))
    feed.current()

    _register(servicer, "n1", "192.168.1.10")

    assert wakes == [1]
    assert [s.node for s in feed.current().node_subnets] == ["n1"]
