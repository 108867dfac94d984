"""A node proxy's refused Service ports on the master: the Service's problems and events."""

from __future__ import annotations

import asyncio

from kernel.clock import FakeClock
from master.api.render import render_service
from master.app.delete import delete_objects
from master.app.proxyproblems import (
    ProblemEvent,
    Reported,
    node_deleted,
    node_problems_changed,
    record_proxy_problems,
)
from master.controllers.manager import ControllerManager
from master.controllers.nodes import LeaseTable
from master.model import (
    Event,
    Node,
    NodeStatus,
    ObjectMeta,
    ProxyProblem,
    Resources,
    Service,
    ServicePort,
)
from master.state import ClusterState
from master.store import MemoryStore

WEB = Service(
    meta=ObjectMeta(name="web", namespace="shop"),
    selector={"app": "web"},
    ports=(ServicePort(80, "80"),),
    cluster_ip="10.96.0.10",
)
DB = Service(
    meta=ObjectMeta(name="db", namespace="default"),
    selector={"app": "db"},
    ports=(ServicePort(5432, "5432"),),
)
IN_USE = Reported("shop", "web", "80", "PortInUse", "the node proxy cannot listen on ...")


def test_a_new_problem_is_recorded_for_its_service_only_with_one_warning() -> None:
    changed = node_problems_changed([WEB, DB], "n1", [IN_USE], now=100.0)

    assert len(changed) == 1
    svc, events = changed[0]
    assert svc.proxy_problems == (
        ProxyProblem("n1", "80", "PortInUse", "the node proxy cannot listen on ...", 100.0),
    )
    assert events == [
        ProblemEvent(
            "Warning", "PortInUse", "node n1: port 80: the node proxy cannot listen on ..."
        )
    ]


def test_the_same_report_again_changes_nothing_and_another_node_adds_its_own() -> None:
    ((web, _),) = node_problems_changed([WEB], "n1", [IN_USE], now=100.0)

    again = node_problems_changed([web], "n1", [IN_USE], now=105.0)
    ((both, _),) = node_problems_changed([web], "n2", [IN_USE], now=106.0)

    assert again == []
    assert [(p.node, p.since) for p in both.proxy_problems] == [("n1", 100.0), ("n2", 106.0)]


def test_a_port_served_again_clears_that_nodes_problem_with_a_normal_event() -> None:
    ((web, _),) = node_problems_changed([WEB], "n1", [IN_USE], now=100.0)
    ((web, _),) = node_problems_changed([web], "n2", [IN_USE], now=101.0)

    ((cleared, events),) = node_problems_changed([web], "n1", [], now=110.0)

    assert [p.node for p in cleared.proxy_problems] == ["n2"]
    assert events == [
        ProblemEvent("Normal", "NodeProxyServing", "node n1: port 80: the node proxy serves it now")
    ]


def test_the_service_shows_a_node_proxy_serving_condition_naming_node_port_and_cause() -> None:
    ((web, _),) = node_problems_changed([WEB], "n1", [IN_USE], now=100.0)

    status = render_service(web)["status"]

    (condition,) = status["conditions"]
    assert condition["type"] == "NodeProxyServing" and condition["status"] == "False"
    assert condition["reason"] == "PortInUse"
    assert condition["message"] == "node n1: port 80: the node proxy cannot listen on ..."
    assert "conditions" not in render_service(WEB)["status"]


def test_a_deleted_nodes_problems_leave_its_services_with_a_normal_event() -> None:
    ((web, _),) = node_problems_changed([WEB], "n1", [IN_USE], now=100.0)
    ((web, _),) = node_problems_changed([web], "n2", [IN_USE], now=101.0)

    ((cleared, events),) = node_deleted([web, DB], "n1")

    assert [p.node for p in cleared.proxy_problems] == ["n2"]
    assert events == [
        ProblemEvent("Normal", "NodeDeleted", "node n1: port 80: the node was deleted")
    ]
    assert node_deleted([cleared, DB], "n1") == []


def test_delete_node_takes_its_problems_off_the_services_and_keeps_the_other_nodes() -> None:
    """Through `delete node` as users send it, with the real controller manager: before,
    the Service kept naming the deleted node in its NodeProxyServing condition for good
    (a deleted node never sends the empty list that clears it)."""
    clock = FakeClock()
    state = ClusterState(MemoryStore(), clock)
    manager = ControllerManager(state, clock, LeaseTable(), lease_seconds=3.0)
    for name in ("n1", "n2"):
        res = Resources(2000, 2**30)
        state.put(Node(ObjectMeta(name=name), "127.0.0.1", res, res, status=NodeStatus(ready=True)))
    state.put(WEB)
    record_proxy_problems(state, "n1", [IN_USE], now=100.0)
    record_proxy_problems(state, "n2", [IN_USE], now=101.0)

    asyncio.run(delete_objects(state, manager, [("Node", "n1")], missing_ok=False))

    web = state.get("Service", "web", "shop")
    assert isinstance(web, Service)
    assert [p.node for p in web.proxy_problems] == ["n2"]
    (condition,) = render_service(web)["status"]["conditions"]
    assert condition["message"] == "node n2: port 80: the node proxy cannot listen on ..."
    events = [e for e in state.objects("Event", "shop") if isinstance(e, Event)]
    assert [(e.reason, e.message) for e in events if e.reason == "NodeDeleted"] == [
        ("NodeDeleted", "node n1: port 80: the node was deleted")
    ]
