"""The LoadBalancer address pool: parsing the flag, one address per Service, oldest first."""

from __future__ import annotations

from dataclasses import replace

import pytest

from master.lb.pool import assign_addresses, parse_pool
from master.model import ObjectMeta, Service, ServicePort, ServiceType

POOL = ("127.0.0.10", "127.0.0.11")


def lb(name: str, created: float, ip: str = "", shown: str = "") -> Service:
    return Service(
        meta=ObjectMeta(name=name, created_at=created),
        selector={"app": name},
        ports=(ServicePort(80, "80"),),
        type=ServiceType("LoadBalancer"),
        load_balancer_ip=ip,
        ingress_ip=shown,
    )


def test_ranges_cidrs_and_lists_in_order() -> None:
    assert parse_pool("127.0.0.10-127.0.0.12") == ("127.0.0.10", "127.0.0.11", "127.0.0.12")
    assert parse_pool("192.0.2.0/30, 10.0.0.7") == ("192.0.2.1", "192.0.2.2", "10.0.0.7")
    assert parse_pool("10.0.0.7/32") == ("10.0.0.7",)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "no address given"),
        ("127.0.0.12-127.0.0.10", "lower to a higher"),
        ("10.0.0.1-::1", "lower to a higher"),
        ("web", "'web' is not an address, a range A-B or a CIDR A/N"),
        ("10.0.0.0/8", "more than 65536 addresses"),
        ("10.0.0.1,10.0.0.1", "10.0.0.1 is given twice"),
    ],
)
def test_bad_pools_are_one_sentence(text: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse_pool(text)


def test_each_loadbalancer_service_gets_its_own_address_oldest_first() -> None:
    cluster_ip = replace(lb("internal", 0.5), type=ServiceType("ClusterIP"))

    assigned, problems = assign_addresses([lb("b", 2), lb("a", 1), cluster_ip], POOL)

    assert assigned == {"a": "127.0.0.10", "b": "127.0.0.11"}
    assert problems == {}


def test_an_exhausted_pool_leaves_the_youngest_pending_with_the_reason() -> None:
    assigned, problems = assign_addresses([lb("a", 1), lb("b", 2), lb("c", 3)], POOL)

    assert set(assigned) == {"a", "b"}
    assert problems["c"].reason == "AddressPoolExhausted"
    assert "127.0.0.10..127.0.0.11 (2 addresses)" in problems["c"].message


def test_an_address_a_service_shows_stays_with_it() -> None:
    # "b" got .10 while "a" did not exist yet; the older "a" does not take it away.
    assigned, _ = assign_addresses([lb("a", 1), lb("b", 2, shown="127.0.0.10")], POOL)

    assert assigned == {"a": "127.0.0.11", "b": "127.0.0.10"}


def test_load_balancer_ip_is_honoured_or_refused_with_the_reason() -> None:
    services = [
        lb("a", 1, shown="127.0.0.10"),
        lb("b", 2, ip="127.0.0.10"),
        lb("c", 3, ip="192.0.2.9"),
        lb("d", 4, ip="127.0.0.11"),
    ]

    assigned, problems = assign_addresses(services, POOL)

    # Oldest first: "a" keeps the address it serves on; the younger request for it is
    # refused naming "a"; one outside the pool is refused naming the pool.
    assert assigned == {"a": "127.0.0.10", "d": "127.0.0.11"}
    assert problems["b"].reason == "AddressInUse" and problems["b"].other == "service/a"
    assert problems["c"].reason == "AddressNotInPool" and "192.0.2.9" in problems["c"].message
    clash, _ = assign_addresses([lb("x", 1, ip="127.0.0.10"), lb("y", 2, ip="127.0.0.10")], POOL)
    _, why = assign_addresses([lb("x", 1, ip="127.0.0.10"), lb("y", 2, ip="127.0.0.10")], POOL)
    assert clash == {"x": "127.0.0.10"} and why["y"].other == "service/x"
