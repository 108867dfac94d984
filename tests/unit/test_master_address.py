"""Where a master tells the others, the agents and clients to reach it (the leader hint a
follower gives, `get masters`, pinnace.conf): never a wildcard listen host, which nobody can
dial (issue 14: followers sent agents to 0.0.0.0)."""

from __future__ import annotations

import pytest

from master.pki.bootstrap import advertised_host, host_port

INTERFACES = ["127.0.0.1", "::1", "fe80::1", "10.1.2.3", "2001:db8::7"]


@pytest.mark.parametrize(
    ("listen", "advertise", "expected"),
    [
        ("0.0.0.0:7400", "", "10.1.2.3"),  # a wildcard: the first routable IPv4 address
        ("[::]:7400", "", "10.1.2.3"),
        (":7400", "", "10.1.2.3"),
        ("0.0.0.0:7400", "master-a.example", "master-a.example"),  # the flag wins
        ("0.0.0.0:7400", "[2001:db8::9]", "2001:db8::9"),
        ("10.9.9.9:7400", "", "10.9.9.9"),  # a real listen address is its own answer
        ("127.0.0.1:7400", "localhost", "localhost"),
    ],
)
def test_a_master_advertises_a_dialable_host(listen: str, advertise: str, expected: str) -> None:
    assert advertised_host(listen, advertise, INTERFACES) == expected


def test_a_wildcard_on_a_machine_with_only_loopback_or_ipv6_still_gives_an_address() -> None:
    assert advertised_host("0.0.0.0:7400", "", ["127.0.0.1", "2001:db8::7"]) == "2001:db8::7"
    assert advertised_host("0.0.0.0:7400", "", ["127.0.0.1", "::1"]) == "127.0.0.1"


def test_ipv6_hosts_are_bracketed_with_their_port() -> None:
    assert host_port("2001:db8::7", 7400) == "[2001:db8::7]:7400"
    assert host_port("10.1.2.3", 7400) == "10.1.2.3:7400"
