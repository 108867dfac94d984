"""Node ports: allocated from the range, honoured or refused in one sentence, kept, freed."""

from __future__ import annotations

import asyncio
from dataclasses import replace

import pytest

from kernel.clock import FakeClock
from master.app.apply import apply_objects
from master.app.errors import AppError
from master.app.nodeport import (
    NodePortError,
    PortRange,
    assign_node_ports,
    parse_port_range,
    taken_node_ports,
)
from master.model import ObjectMeta, Service, ServicePort, ServiceType
from master.state import ClusterState
from master.store import MemoryStore


def svc(
    name: str,
    *ports: ServicePort,
    kind: ServiceType = ServiceType.NODE_PORT,
) -> Service:
    return Service(
        meta=ObjectMeta(name=name, created_at=1.0),
        selector={"app": name},
        ports=ports or (ServicePort(80, "80"),),
        type=kind,
    )


def port(number: int, node_port: int = 0, protocol: str = "TCP", name: str = "") -> ServicePort:
    return ServicePort(number, str(number), protocol, name, node_port)


def _state(first: int = 30000, last: int = 32767) -> ClusterState:
    state = ClusterState(MemoryStore(), FakeClock())
    state.node_port_range = PortRange(first, last)
    return state


def _apply(state: ClusterState, *services: Service) -> list[Service]:
    applied = asyncio.run(apply_objects(state, services, 1.0))
    return [a.obj for a in applied if isinstance(a.obj, Service)]


def _node_ports(service: Service) -> list[int]:
    return [p.node_port for p in service.ports]


def test_every_port_of_a_nodeport_or_loadbalancer_service_gets_the_lowest_free_port() -> None:
    state = _state()

    web, lb, inner = _apply(
        state,
        svc("web", port(80, name="http"), port(443, name="https")),
        svc("lb", kind=ServiceType.LOAD_BALANCER),
        svc("inner", kind=ServiceType.CLUSTER_IP),
    )

    assert _node_ports(web) == [30000, 30001]
    assert _node_ports(lb) == [30002]
    assert _node_ports(inner) == [0]  # a ClusterIP Service has none


def test_a_requested_node_port_is_honoured_and_kept_on_reapply_and_freed_on_delete() -> None:
    state = _state()
    (web,) = _apply(state, svc("web", port(80, 31234)))
    assert _node_ports(web) == [31234]

    same = asyncio.run(apply_objects(state, [svc("web", port(80))], 2.0))
    assert [a.action for a in same] == ["unchanged"]  # no nodePort asks for nothing
    (moved,) = _apply(state, svc("web", port(80), port(81, name="b")))
    assert _node_ports(moved) == [31234, 30000]  # the port keeps its node port


def test_tcp_and_udp_of_one_service_port_share_a_node_port_another_service_may_not() -> None:
    state = _state()
    (dns,) = _apply(
        state, svc("dns", port(53, protocol="UDP", name="dns"), port(53, name="dns-tcp"))
    )
    assert _node_ports(dns) == [30000, 30000]

    with pytest.raises(AppError) as err:
        _apply(state, svc("other", port(53, 30000, "UDP")))
    assert "30000 is already allocated to another Service port" in err.value.message


@pytest.mark.parametrize(
    ("wanted", "sentence"),
    [
        (
            31000,
            "service/other: spec.ports[0].nodePort: 31000 is already allocated to another "
            "Service port (choose another port or leave the field out)",
        ),
        (
            8080,
            "service/other: spec.ports[0].nodePort: 8080 is outside the node port range "
            "30000-32767 (choose a port in it, or leave the field out and the master picks one)",
        ),
    ],
)
def test_a_taken_or_out_of_range_node_port_is_refused_with_one_sentence(
    wanted: int, sentence: str
) -> None:
    state = _state()
    _apply(state, svc("web", port(80, 31000)))

    with pytest.raises(AppError) as err:
        _apply(state, svc("other", port(80, wanted)))

    assert err.value.code == "invalid" and err.value.message == sentence
    assert state.get("Service", "other") is None


def test_two_services_of_one_apply_may_not_ask_for_the_same_port() -> None:
    with pytest.raises(AppError) as err:
        _apply(_state(), svc("a", port(80, 30100)), svc("b", port(80, 30100)))

    assert err.value.message.startswith("service/b: spec.ports[0].nodePort: 30100 is already")


def test_a_clusterip_service_asking_for_a_node_port_is_told_the_fix() -> None:
    with pytest.raises(AppError) as err:
        _apply(_state(), svc("web", port(80, 30100), kind=ServiceType.CLUSTER_IP))

    assert err.value.message == (
        "service/web: spec.ports[0].nodePort: a ClusterIP Service has no node port "
        "(remove the field, or set spec.type: NodePort)"
    )


def test_a_full_range_names_the_flag() -> None:
    state = _state(30000, 30001)
    _apply(state, svc("a", port(80), port(81, name="b")))

    with pytest.raises(AppError) as err:
        _apply(state, svc("c"))

    assert "no port left in the node port range 30000-30001" in err.value.message
    assert "--service-node-port-range" in err.value.message


def test_assign_leaves_the_taken_set_holding_the_new_ports() -> None:
    taken = taken_node_ports([svc("old", port(80, 30000))])

    new = assign_node_ports(svc("new"), None, taken)

    assert _node_ports(new) == [30001]
    assert taken == {30000, 30001}


@pytest.mark.parametrize(
    ("text", "expected"),
    [("30000-32767", PortRange(30000, 32767)), (" 20000-20010 ", PortRange(20000, 20010))],
)
def test_the_range_flag_parses(text: str, expected: PortRange) -> None:
    assert parse_port_range(text) == expected


@pytest.mark.parametrize("text", ["abc", "32767-30000", "0-10", "1-70000"])
def test_a_bad_range_is_one_sentence_naming_the_flag(text: str) -> None:
    with pytest.raises(NodePortError) as err:
        parse_port_range(text)

    assert str(err.value).startswith(f"--service-node-port-range {text}: ")


def test_get_svc_shows_node_ports_and_protocols_as_kubectl_does() -> None:
    from master.api.render import render_service
    from master.api.tables import rows_for

    dns = replace(
        svc("dns", port(80, 31234, name="http"), port(53, 30053, "UDP", name="dns")),
        cluster_ip="10.96.0.10",
    )
    inner = replace(svc("inner", port(53, protocol="UDP"), kind=ServiceType.CLUSTER_IP))

    rows = rows_for("Service", [render_service(dns), render_service(inner)], wide=False, now=1.0)

    assert [row[4] for row in rows] == ["80:31234/TCP,53:30053/UDP", "53/UDP"]


def test_nodeport_to_clusterip_sending_back_its_node_ports_drops_them() -> None:
    # kubectl get -o yaml, type: ClusterIP, apply: the stored nodePorts come back with it.
    state = _state()
    (web,) = _apply(state, svc("web", port(80, name="http"), port(443, name="https")))
    sent_back = svc("web", *web.ports, kind=ServiceType.CLUSTER_IP)

    (inner,) = _apply(state, sent_back)

    assert inner.type == ServiceType.CLUSTER_IP and _node_ports(inner) == [0, 0]
    # The ports are free again for another Service.
    (other,) = _apply(state, svc("other", port(80, web.ports[0].node_port)))
    assert _node_ports(other) == [web.ports[0].node_port]


def test_nodeport_to_clusterip_with_a_node_port_it_did_not_have_is_refused() -> None:
    state = _state()
    (web,) = _apply(state, svc("web", port(80, 30005)))

    with pytest.raises(AppError) as err:
        _apply(state, svc("web", port(80, 30006), kind=ServiceType.CLUSTER_IP))

    assert err.value.message == (
        "service/web: spec.ports[0].nodePort: a ClusterIP Service has no node port "
        "(remove the field, or set spec.type: NodePort)"
    )
    assert state.get("Service", "web") == web


def lb(name: str, *ports: ServicePort, allocate: bool | None = False) -> Service:
    return replace(svc(name, *ports, kind=ServiceType.LOAD_BALANCER), allocate_node_ports=allocate)


def test_a_loadbalancer_without_node_port_allocation_gets_none_but_those_it_asks_for() -> None:
    state = _state()

    plain, asked = _apply(
        state, lb("plain", port(80, name="a"), port(81, name="b")), lb("asked", port(80, 30009))
    )

    assert _node_ports(plain) == [0, 0]
    assert _node_ports(asked) == [30009]  # Kubernetes honours a port asked for by number
    (np,) = _apply(state, svc("np"))
    assert _node_ports(np) == [30000]


def test_turning_node_port_allocation_off_frees_the_ports_and_on_gives_them_again() -> None:
    state = _state()
    (web,) = _apply(state, lb("web", allocate=None))
    assert _node_ports(web) == [30000]

    (off,) = _apply(state, lb("web", port(80)))
    assert _node_ports(off) == [0]
    (taker,) = _apply(state, svc("taker"))
    assert _node_ports(taker) == [30000]
    (on,) = _apply(state, lb("web", allocate=True))
    assert _node_ports(on) == [30001]


def test_allocate_load_balancer_node_ports_on_another_type_is_refused_unless_sent_back() -> None:
    state = _state()
    with pytest.raises(AppError) as err:
        _apply(state, replace(svc("np"), allocate_node_ports=False))
    assert err.value.message == (
        "service/np: spec.allocateLoadBalancerNodePorts: applies to a LoadBalancer Service "
        "only, not a NodePort one (remove the field, or set spec.type: LoadBalancer)"
    )

    # A LoadBalancer changed to NodePort may send back the value it showed (true).
    _apply(state, lb("web", allocate=None))
    (np,) = _apply(state, replace(svc("web"), allocate_node_ports=True))
    assert np.type == ServiceType.NODE_PORT and np.allocate_node_ports is None


def test_a_loadbalancer_shows_allocate_load_balancer_node_ports_as_kubernetes_does() -> None:
    from master.api.render import render_service

    assert render_service(lb("a", allocate=None))["spec"]["allocateLoadBalancerNodePorts"] is True
    assert render_service(lb("b"))["spec"]["allocateLoadBalancerNodePorts"] is False
    assert "allocateLoadBalancerNodePorts" not in render_service(svc("c"))["spec"]
