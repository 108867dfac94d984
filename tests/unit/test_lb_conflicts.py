"""Unservable Services: port conflicts found oldest-first, refused at apply, shown in status."""

from __future__ import annotations

from dataclasses import replace

from master.lb.conflicts import (
    Listener,
    admission_errors,
    find_unservable,
    plan_services,
    service_status,
)
from master.lb.endpoints import compute_lb_services
from master.lb.model import LbAddresses, LbState, Unservable
from master.lb.slots import assign_slots
from master.model import ObjectMeta, Service, ServicePort, ServiceType

ONE = LbAddresses(listen="127.0.0.1")
SPLIT = LbAddresses(listen="192.0.2.1", internal="10.0.0.1")


def svc(name: str, *ports: int, type_: str = "LoadBalancer", created: float = 1.0) -> Service:
    return Service(
        meta=ObjectMeta(name=name, created_at=created),
        selector={"app": name},
        ports=tuple(ServicePort(p, str(p), name=f"p{p}" if len(ports) > 1 else "") for p in ports),
        type=ServiceType(type_),
    )


def test_a_second_service_on_the_same_port_is_unservable_and_names_the_first() -> None:
    first = svc("my-web-app-service", 80, created=1.0)
    second = svc("other-web", 80, created=2.0)

    problems = find_unservable([second, first], ONE)

    assert problems == {
        "other-web": Unservable(
            "other-web",
            "PortConflict",
            "spec.ports[0].port: 127.0.0.1:80 is already used by service/my-web-app-service",
            other="service/my-web-app-service",
        )
    }


def test_the_rest_of_the_cluster_is_still_balanced_without_the_unservable_one() -> None:
    services = [svc("a", 80, created=1), svc("b", 80, created=2), svc("c", 81, created=3)]
    problems = find_unservable(services, ONE)
    servable = [s for s in services if s.meta.name not in problems]

    lb = compute_lb_services(servable, [], {}, 0, ONE.listen, ONE.bind_internal)

    assert sorted(s.name for s in lb) == ["a", "c"]
    # The slot table (the step that used to raise for the whole cluster) accepts it.
    assert [b.service for b in assign_slots(LbState(), lb, 4).backends] == ["a", "c"]


def test_the_older_service_keeps_the_port_whatever_the_order_or_name() -> None:
    young = svc("aaa", 80, created=5.0)
    old = svc("zzz", 80, created=1.0)

    assert set(find_unservable([young, old], ONE)) == {"aaa"}


def test_a_clusterip_and_a_loadbalancer_service_clash_on_the_internal_address() -> None:
    lb = svc("web", 6379, created=1)
    cluster = svc("redis", 6379, type_="ClusterIP", created=2)

    (problem,) = find_unservable([lb, cluster], SPLIT).values()

    assert "10.0.0.1:6379" in problem.message and problem.other == "service/web"


def test_different_ports_and_a_freed_port_do_not_clash() -> None:
    assert find_unservable([svc("a", 80, 443), svc("b", 8080)], ONE) == {}
    # Once the holder is gone, the other one is served.
    assert find_unservable([svc("b", 80, created=2)], ONE) == {}


def test_a_wildcard_listener_overlaps_every_address_on_its_port() -> None:
    assert Listener("0.0.0.0", 80).overlaps(Listener("127.0.0.1", 80))
    assert Listener("127.0.0.2", 80).overlaps(Listener("::", 80))
    assert not Listener("127.0.0.2", 80).overlaps(Listener("127.0.0.1", 80))
    assert not Listener("0.0.0.0", 80).overlaps(Listener("0.0.0.0", 81))


def test_a_port_pushed_out_of_range_by_the_offset_is_unservable() -> None:
    offset = LbAddresses(listen="127.0.0.1", port_offset=20000)

    problems = find_unservable([svc("big", 50000), svc("ok", 80)], offset)

    assert list(problems) == ["big"]
    assert problems["big"].reason == "InvalidPort" and "70000" in problems["big"].message


def test_apply_refuses_a_port_another_service_holds_in_one_sentence() -> None:
    errors = admission_errors([svc("other-web", 80)], [svc("my-web-app-service", 80)], ONE)

    assert errors == [
        "service/other-web: spec.ports[0].port: 127.0.0.1:80 is already used by "
        "service/my-web-app-service; choose another port or delete "
        "service/my-web-app-service first"
    ]


def test_apply_checks_services_of_one_apply_against_each_other() -> None:
    errors = admission_errors([svc("a", 80), svc("b", 8080, 80)], [], ONE)

    assert errors == [
        "service/b: spec.ports[1].port: 127.0.0.1:80 is already used by service/a; "
        "choose another port or delete service/a first"
    ]


def test_reapplying_a_service_does_not_clash_with_its_stored_self() -> None:
    stored = svc("web", 80)
    assert admission_errors([svc("web", 80, 443)], [stored], ONE) == []


def test_an_unservable_stored_service_does_not_block_others() -> None:
    # Stored before the check existed: "b" never got the port, so "a" moving to 81
    # and a new "c" on 80 are judged against what is really served.
    stored = [svc("a", 80, created=1), svc("b", 80, created=2)]
    assert admission_errors([svc("c", 80)], stored, ONE) != []
    assert admission_errors([svc("a", 81)], stored, ONE) == []


def test_status_carries_the_reason_and_emits_one_warning_then_clears() -> None:
    problem = Unservable("b", "PortConflict", "taken by service a", other="service/a")
    served = svc("b", 80)

    pending, warning = service_status(served, problem, ONE, now=10.0)
    again, repeat = service_status(pending, problem, ONE, now=11.0)
    healed, normal = service_status(again, None, ONE, now=12.0)

    assert (pending.ingress_ip, pending.lb_reason, pending.lb_since) == ("", "PortConflict", 10.0)
    assert warning is not None and warning.type == "Warning" and warning.reason == "PortConflict"
    assert again is pending and repeat is None
    assert (healed.ingress_ip, healed.lb_reason) == ("127.0.0.1", "")
    assert normal is not None and normal.type == "Normal"
    assert service_status(healed, None, ONE, now=13.0) == (healed, None)


POOLED = LbAddresses(listen="127.0.0.1", pool=("127.0.0.10", "127.0.0.11"))


def with_ip(service: Service, ip: str) -> Service:
    return replace(service, load_balancer_ip=ip)


def test_with_a_pool_every_loadbalancer_service_can_use_port_80() -> None:
    services = [svc("a", 80, created=1), svc("b", 80, created=2)]
    cluster = svc("internal", 80, type_="ClusterIP", created=3)

    own, problems = plan_services([*services, cluster], POOLED)
    lb = compute_lb_services(
        [*services, cluster], [], {}, 0, "127.0.0.1", "127.0.0.1", own_addresses=own
    )

    assert problems == {}
    assert own == {"a": "127.0.0.10", "b": "127.0.0.11"}
    assert {s.name: s.bind_addresses for s in lb} == {
        "a": ("127.0.0.10",),
        "b": ("127.0.0.11",),
        "internal": ("127.0.0.1",),
    }
    status, _ = service_status(services[1], None, POOLED, 1.0, own["b"])
    # The cluster IP is not the load balancer's to give (master/app/clusterip.py).
    assert (status.ingress_ip, status.cluster_ip) == ("127.0.0.11", "")


def test_a_third_service_waits_for_an_address_and_apply_does_not_refuse_it() -> None:
    stored = [svc("a", 80, created=1), svc("b", 80, created=2)]

    assert find_unservable([*stored, svc("c", 80, created=3)], POOLED)["c"].reason == (
        "AddressPoolExhausted"
    )
    assert admission_errors([svc("c", 80)], stored, POOLED) == []


def test_apply_refuses_a_load_balancer_ip_outside_the_pool_or_in_use() -> None:
    stored = [with_ip(svc("a", 80, created=1), "127.0.0.10")]

    (outside,) = admission_errors([with_ip(svc("b", 80), "192.0.2.1")], stored, POOLED)
    (taken,) = admission_errors([with_ip(svc("b", 80), "127.0.0.10")], stored, POOLED)

    assert outside.startswith("service/b: spec.loadBalancerIP 192.0.2.1 is not in the")
    assert "127.0.0.10..127.0.0.11" in outside
    assert taken == (
        "service/b: spec.loadBalancerIP 127.0.0.10 is already service/a's; choose another "
        "address or delete service/a first"
    )
    assert admission_errors([with_ip(svc("b", 80), "127.0.0.11")], stored, POOLED) == []


def test_without_a_pool_load_balancer_ip_may_only_name_the_one_address() -> None:
    assert admission_errors([with_ip(svc("a", 80), "127.0.0.1")], [], ONE) == []
    (error,) = admission_errors([with_ip(svc("a", 80), "127.0.0.5")], [], ONE)
    assert "the load balancer has one address, 127.0.0.1" in error
    assert "--lb-address-pool" in error


def test_a_clusterip_service_is_never_refused_for_the_internal_address_and_says_why() -> None:
    first = replace(svc("red", 80, type_="ClusterIP", created=1), cluster_ip="10.96.1.0")
    second = replace(svc("blue", 80, type_="ClusterIP", created=2), cluster_ip="10.96.1.1")

    assert admission_errors([second], [first], ONE) == []
    (problem,) = find_unservable([first, second], ONE).values()
    assert problem.message.endswith("(pods still reach it at its cluster IP 10.96.1.1)")


def test_a_loadbalancer_service_takes_the_port_from_an_older_clusterip_one() -> None:
    old = svc("internal", 80, type_="ClusterIP", created=1)
    new = svc("web", 80, created=2)

    assert set(find_unservable([old, new], ONE)) == {"internal"}
    assert admission_errors([new], [old], ONE) == []


def _with_udp(service: Service, *protocols: str) -> Service:
    ports = tuple(
        ServicePort(53, "53", protocol, f"p{i}", 30053 + i) for i, protocol in enumerate(protocols)
    )
    return replace(service, ports=ports)


def test_udp_ports_take_no_listener_of_the_load_balancer() -> None:
    # HAProxy binds TCP: a UDP port must neither bind nor clash with a TCP one.
    dns = _with_udp(svc("dns", created=1), "UDP")
    web = replace(svc("web", created=2), ports=(ServicePort(53, "53"),))

    assert find_unservable([dns, web], ONE) == {}
    lb = compute_lb_services([dns, web], [], {}, tcp_only=True)
    assert [s.name for s in lb] == ["web"]
    # Listing endpoints still shows the UDP port.
    assert len(compute_lb_services([dns], [], {})) == 1


def test_a_loadbalancer_udp_port_gets_a_warning_and_a_condition_naming_where_it_is_served() -> None:
    mixed = _with_udp(svc("dns"), "UDP", "TCP")

    status, warning = service_status(mixed, None, ONE, now=5.0)
    again, repeat = service_status(status, None, ONE, now=6.0)
    only_udp, _ = service_status(_with_udp(svc("dns"), "UDP"), None, ONE, now=5.0)
    inner, none = service_status(_with_udp(svc("dns", type_="ClusterIP"), "UDP"), None, ONE, 5.0)

    assert warning is not None and (warning.type, warning.reason) == (
        "Warning",
        "UDPNotServedByLoadBalancer",
    )
    assert warning.message.startswith(
        "spec.ports[0] 53/UDP (node port 30053): the load balancer (HAProxy) serves TCP only"
    )
    assert "cluster IP" in warning.message and "node port" in warning.message
    # The TCP port is served at the address; a UDP-only Service shows none (<pending>).
    assert (status.ingress_ip, status.lb_reason, status.lb_since) == (
        "127.0.0.1",
        "UDPNotServedByLoadBalancer",
        5.0,
    )
    assert again is status and repeat is None
    assert only_udp.ingress_ip == ""
    assert (inner.lb_reason, none) == ("", None)
