"""The address users see for a pod (master/app/podnetwork.py): its own where its node's
host-gw rules are in place and no node reports its subnet unreached, else its node's; the
pod's PodIPRoutable condition, `status.podIP(s)` and the Endpoints follow."""

from __future__ import annotations

import ipaddress

from kernel.clock import FakeClock
from master.api.kube.objects import endpoint_slices
from master.api.render import render_endpoints, render_pod
from master.app.podnetwork import PodNetwork, network_of, pod_address, pod_network, reached_key
from master.app.queries import list_endpoints
from master.model import (
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
from master.store import MemoryStore

CIDRS = {"a": "10.244.1.0/24", "b": "10.244.2.0/24"}
A_UNREACHED = (reached_key("a", CIDRS["a"]),)


def _node(
    name: str,
    unreached: tuple[str, ...] = (),
    ready: bool = True,
    cidr: str = "",
    rules: str | None = None,
) -> Node:
    """A node with a pod subnet whose agent reported its rules in place (`rules`: the
    subnet it reported ready, "" none) and `unreached` (what its machine cannot route)."""
    subnet = cidr or CIDRS.get(name, "")
    return Node(
        meta=ObjectMeta(name=name),
        address=f"192.168.1.{ord(name[0])}",
        capacity=Resources(1000, 1 << 30),
        allocatable=Resources(1000, 1 << 30),
        status=NodeStatus(ready=ready),
        pod_cidr=subnet,
        pod_cidr_ready=subnet if rules is None else rules,
        pod_unreached=unreached,
    )


def _pod(node: str = "a", pod_ip: str = "10.244.1.5") -> Pod:
    return Pod(
        meta=ObjectMeta(name=f"web-{node}", labels={"app": "web"}),
        spec=PodSpec(containers=(Container("httpd", "httpd", ports=(ContainerPort(8080),)),)),
        node_name=node,
        status=PodStatus(
            host_ip=f"192.168.1.{ord(node[0])}",
            port_map={"8080/TCP": 32001},
            ready=True,
            pod_ip=pod_ip,
        ),
    )


def test_a_node_is_reached_when_its_rules_are_in_place_and_no_node_reports_it_unreached() -> None:
    both = pod_network([_node("a"), _node("b")])
    assert both.subnets == CIDRS and not both.unreached

    # b cannot route a's subnet (refused, or its route failed): a's pods keep their node's
    # address.
    partial = pod_network([_node("a"), _node("b", unreached=A_UNREACHED)])
    assert partial.subnets == {"b": CIDRS["b"]}
    assert partial.unreached["a"].startswith("node b does not route node a's pod subnet")

    # A node whose agent has not said its rules are in place (just joined, or failing),
    # or said so for a subnet it no longer has, is not reached either; nor holds back
    # the others.
    joined = pod_network([_node("a"), _node("b", rules="")])
    assert joined.subnets == {"a": CIDRS["a"]}
    assert "has not reported its pod network (10.244.2.0/24) in place" in joined.unreached["b"]
    moved = _node("a", cidr="10.244.9.0/24", rules=CIDRS["a"])
    assert "a" in pod_network([moved, _node("b")]).unreached
    # A report about a subnet the node no longer has does not count against it.
    assert "a" in pod_network([moved, _node("b", unreached=A_UNREACHED)]).unreached
    fresh = _node("a", cidr="10.244.9.0/24")
    assert "a" in pod_network([fresh, _node("b", unreached=A_UNREACHED)]).subnets

    # A node that is down does not hold the others back; one without a subnet is no party.
    down = _node("b", unreached=A_UNREACHED, ready=False)
    assert "a" in pod_network([_node("a"), down]).subnets
    plain = _node("c", unreached=A_UNREACHED, cidr="", rules="")
    assert pod_network([_node("a"), _node("b"), plain]).subnets == CIDRS


def test_a_pod_shows_its_own_address_only_on_its_nodes_bridge_of_a_reached_node() -> None:
    network = pod_network([_node("a"), _node("b", unreached=A_UNREACHED)])

    assert pod_address(_pod("a"), None).ip == "192.168.1.97"  # no pod subnets at all
    own = pod_address(_pod("b", "10.244.2.7"), network)
    assert (own.ip, own.routable) == ("10.244.2.7", True)
    unreached = pod_address(_pod("a"), network)
    assert (unreached.ip, unreached.routable) == ("192.168.1.97", False)
    assert "node b does not route" in unreached.why
    docker0 = pod_address(_pod("b", "172.17.0.3"), network)
    assert (docker0.ip, docker0.routable) == ("192.168.1.98", False)
    assert "Docker's default bridge" in docker0.why
    # On a node with no subnet (or a pod network: the pod's address is its host IP) there
    # is nothing to say.
    assert pod_address(_pod("c", "10.0.0.4"), network) == pod_address(_pod("c"), None)


def test_the_rendered_pod_carries_pod_ips_and_a_condition_saying_why() -> None:
    network = pod_network([_node("a"), _node("b", unreached=A_UNREACHED)])

    routed = render_pod(_pod("b", "10.244.2.7"), 0.0, network)["status"]
    assert routed["podIP"] == "10.244.2.7" and routed["podIPs"] == [{"ip": "10.244.2.7"}]
    assert routed["hostIP"] == "192.168.1.98" and routed["hostIPs"] == [{"ip": "192.168.1.98"}]
    assert routed["endpoints"] == ["192.168.1.98:32001"]  # where its ports are published
    (condition,) = [c for c in routed["conditions"] if c["type"] == "PodIPRoutable"]
    assert condition["status"] == "True"

    shown = render_pod(_pod("a"), 0.0, network)["status"]
    assert shown["podIP"] == "192.168.1.97"
    (condition,) = [c for c in shown["conditions"] if c["type"] == "PodIPRoutable"]
    assert (condition["status"], condition["reason"]) == ("False", "NodeAddress")
    assert "node b does not route node a's pod subnet 10.244.1.0/24" in condition["message"]
    # Without pod subnets: as before, and no such condition.
    plain = render_pod(_pod("a"), 0.0)["status"]
    assert plain["podIP"] == "192.168.1.97"
    assert "PodIPRoutable" not in [c["type"] for c in plain["conditions"]]


def test_endpoints_name_reached_pods_by_address_and_container_port() -> None:
    state = ClusterState(MemoryStore(), FakeClock())
    state.cluster_cidr = ipaddress.IPv4Network("10.244.0.0/16")
    state.put(_node("a"))
    state.put(_node("b", unreached=A_UNREACHED))
    state.put(_pod("a"))
    state.put(_pod("b", "10.244.2.7"))
    service = Service(
        meta=ObjectMeta(name="web"), selector={"app": "web"}, ports=(ServicePort(80, "8080"),)
    )
    state.put(service)

    ((svc, ports),) = list_endpoints(state, "web")
    endpoints = render_endpoints(svc, ports)
    shown = {(a["ip"], s["ports"][0]["port"]) for s in endpoints["subsets"] for a in s["addresses"]}
    assert shown == {("10.244.2.7", 8080), ("192.168.1.97", 32001)}
    slices = endpoint_slices(endpoints)
    assert {s["endpoints"][0]["addresses"][0] for s in slices} == {"10.244.2.7", "192.168.1.97"}

    # Node b routes a's subnet now: a's pod is shown at its own address too (the memo
    # sees the new Node object).
    first = network_of(state)
    state.put(_node("b"))
    assert network_of(state) is not first
    ((svc, ports),) = list_endpoints(state, "web")
    assert {e.address for e in ports[0].endpoints} == {"10.244.1.5", "10.244.2.7"}
    assert network_of(state) == PodNetwork(CIDRS, {})
