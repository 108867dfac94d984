"""Cluster IPs: one address per Service from --service-cidr, stable, requested or refused."""

from __future__ import annotations

import asyncio
import ipaddress
from dataclasses import replace

import pytest

from kernel.clock import FakeClock
from master.app.apply import apply_objects
from master.app.clusterip import (
    ClusterIpError,
    assign_cluster_ip,
    parse_service_cidr,
    repair_cluster_ips,
    static_band,
)
from master.app.delete import delete_objects
from master.app.errors import AppError
from master.model import HEADLESS, ObjectMeta, Service, ServicePort, ServiceType
from master.state import ClusterState
from master.store import MemoryStore

SMALL = ipaddress.ip_network("10.0.0.0/28")  # 14 usable, the bottom 16 kept: all static


def svc(name: str, port: int = 6379, ip: str = "", created: float = 1.0) -> Service:
    return Service(
        meta=ObjectMeta(name=name, created_at=created),
        selector={"app": name},
        ports=(ServicePort(port, str(port)),),
        cluster_ip=ip,
        headless=ip == HEADLESS,
    )


def _state() -> ClusterState:
    return ClusterState(MemoryStore(), FakeClock())


def _apply(state: ClusterState, *services: Service) -> list[Service]:
    applied = asyncio.run(apply_objects(state, services, 1.0))
    return [a.obj for a in applied if isinstance(a.obj, Service)]


def test_two_services_on_one_port_get_two_addresses_above_the_static_band() -> None:
    state = _state()

    a, b = _apply(state, svc("redis-leader"), svc("redis-follower"))

    # Kubernetes keeps the bottom 256 addresses of a /12 for requested ones.
    assert static_band(state.service_cidr) == 256
    assert (a.cluster_ip, b.cluster_ip) == ("10.96.1.0", "10.96.1.1")


def test_the_address_is_stored_and_kept_on_reapply_and_freed_on_delete() -> None:
    state = _state()
    (first,) = _apply(state, svc("web"))

    (again,) = _apply(state, svc("web", port=8080))  # configured: same address
    stored = state.get("Service", "web")
    assert isinstance(stored, Service)
    assert again.cluster_ip == stored.cluster_ip == first.cluster_ip

    asyncio.run(delete_objects(state, _NoLifecycle(), [("Service", "web")], missing_ok=False))
    (other,) = _apply(state, svc("other"))
    assert other.cluster_ip == first.cluster_ip  # the freed address is the lowest again


def test_a_requested_address_is_honoured_or_refused_with_one_sentence() -> None:
    state = _state()
    (dns,) = _apply(state, svc("dns", 53, ip="10.96.0.10"))
    assert dns.cluster_ip == "10.96.0.10"

    cases = {
        "10.96.0.10": "service/other: spec.clusterIP: 10.96.0.10 is already allocated to "
        "another Service (choose another address or leave it out)",
        "192.168.1.1": "service/other: spec.clusterIP: 192.168.1.1 is not in the service "
        "range 10.96.0.0/12 (leave it out and the master picks one)",
        "10.96.0.0": "service/other: spec.clusterIP: 10.96.0.0 is not in the service range",
    }
    for wanted, sentence in cases.items():
        with pytest.raises(AppError) as err:
            _apply(state, svc("other", ip=wanted))
        assert err.value.code == "invalid" and err.value.message.startswith(sentence)
    assert state.get("Service", "other") is None


def test_an_address_may_not_change_but_asking_for_the_same_one_is_unchanged() -> None:
    state = _state()
    (web,) = _apply(state, svc("web"))

    same = asyncio.run(apply_objects(state, [svc("web", ip=web.cluster_ip)], 2.0))
    assert [a.action for a in same] == ["unchanged"]
    with pytest.raises(AppError) as err:
        _apply(state, svc("web", ip="10.96.0.99"))
    assert "10.96.0.99 may not replace 10.96.1.0 (the field is immutable" in err.value.message


def test_a_headless_service_gets_no_address_and_holds_none() -> None:
    state = _state()

    headless, web = _apply(state, svc("db", ip=HEADLESS), svc("web"))

    assert (headless.cluster_ip, headless.headless) == ("None", True)
    assert web.cluster_ip == "10.96.1.0"


def test_a_full_range_refuses_the_next_service_and_names_the_flag() -> None:
    taken = {str(ipaddress.ip_address(int(SMALL.network_address) + i)) for i in range(1, 15)}

    with pytest.raises(ClusterIpError) as err:
        assign_cluster_ip(svc("late"), None, taken, SMALL)

    assert "no address left in the service range 10.0.0.0/28" in str(err.value)
    assert "--service-cidr" in str(err.value)


def test_dynamic_allocation_falls_back_to_the_static_band_when_the_top_is_full() -> None:
    net = ipaddress.ip_network("10.0.0.0/24")  # band of 16: dynamic from .16
    taken = {f"10.0.0.{i}" for i in range(16, 255)}

    got = assign_cluster_ip(svc("x"), None, taken, net)

    assert got.cluster_ip == "10.0.0.1"


def test_repair_gives_old_services_an_address_of_the_range_oldest_first() -> None:
    old = [
        svc("b", ip="127.0.0.1", created=2),  # the load balancer's address, before cluster IPs
        svc("a", created=1),
        svc("kept", ip="10.96.1.0", created=3),
        replace(svc("h", created=4), headless=True, cluster_ip=""),
    ]
    net = ipaddress.ip_network("10.96.0.0/12")

    fixed = {s.meta.name: s.cluster_ip for s in repair_cluster_ips(old, net)}

    assert fixed == {"a": "10.96.1.1", "b": "10.96.1.2", "h": "None"}


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("10.96.0.0/12", "10.96.0.0/12"),
        ("fd00:96::/108", "fd00:96::/108"),
    ],
)
def test_service_cidr_parses(text: str, expected: str) -> None:
    assert str(parse_service_cidr(text)) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("10.96.0.1/12", "not a network in CIDR form"),
        ("banana", "not a network in CIDR form"),
        ("10.0.0.0/30", "too small (4 addresses)"),
        ("10.0.0.0/8", "too large"),
    ],
)
def test_a_bad_service_cidr_is_one_sentence(text: str, expected: str) -> None:
    with pytest.raises(ClusterIpError) as err:
        parse_service_cidr(text)
    assert str(err.value).startswith(f"--service-cidr {text}: ")
    assert expected in str(err.value)


def test_the_type_does_not_matter_every_non_headless_service_gets_one() -> None:
    lb = replace(svc("web", 80), type=ServiceType.LOAD_BALANCER)

    assert assign_cluster_ip(lb, None, set(), SMALL).cluster_ip == "10.0.0.1"


class _NoLifecycle:
    def delete_pod(self, name: str, reason: str, message: str, namespace: str = "") -> bool:
        return True

    def forget_node(self, name: str) -> bool:
        return True
