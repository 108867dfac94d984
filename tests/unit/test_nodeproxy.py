"""The node proxy: its HAProxy config from the service table, and what each table asks for."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from pathlib import Path

import pytest

from agent.nodeproxy.plan import plan_step
from agent.nodeproxy.proxy import NodeProxy
from agent.nodeproxy.render import ProxySettings, render_config
from agent.nodeproxy.route import local_route_command
from agent.nodeproxy.slots import section_name
from agent.nodeproxy.table import Backend, ServicePort, ServiceTable, TableService
from kernel.clock import FakeClock
from kernel.haproxy_tuning import haproxy_threads

RED = TableService(
    name="red",
    cluster_ip="10.96.1.0",
    ports=(ServicePort("", 6379, backends=(Backend("192.0.2.1", 31001, "red-a"),)),),
)
BLUE = TableService(
    name="blue",
    namespace="shop",
    cluster_ip="10.96.1.1",
    ports=(
        ServicePort(
            "redis",
            6379,
            backends=(Backend("192.0.2.1", 31002, "blue-a"), Backend("192.0.2.2", 31003, "blue-b")),
        ),
    ),
)
HEADLESS = TableService(name="db", headless=True, ports=(ServicePort("", 5432),))
TABLE = ServiceTable(version=3, services=(RED, BLUE, HEADLESS), service_cidr="10.96.0.0/12")


def _sections(text: str) -> dict[str, list[str]]:
    sections: dict[str, list[str]] = {}
    current = ""
    for line in text.splitlines():
        if line.startswith("listen "):
            current = line.split()[1]
            sections[current] = []
        elif current and line.startswith("    "):
            sections[current].append(line.strip())
    return sections


def test_threads_are_haproxys_default_unless_set() -> None:
    assert "nbthread" not in render_config(TABLE)
    assert "    nbthread 1\n" in render_config(TABLE, ProxySettings(threads=1))


def test_one_haproxy_thread_on_machines_of_two_cpus_or_fewer() -> None:
    assert [haproxy_threads(n) for n in (1, 2, 3, 8, None)] == [1, 1, 0, 0, 0]


def test_two_services_on_one_port_bind_their_own_addresses_with_their_own_pods() -> None:
    sections = _sections(render_config(TABLE))

    empty = [f"server s{i} 0.0.0.0:0 check disabled" for i in range(1, 8)]
    assert sections["default.red:6379"] == [
        "bind 10.96.1.0:6379",
        "balance roundrobin",
        "server s0 192.0.2.1:31001 check",
        *empty,
    ]
    assert sections["shop.blue:redis"] == [
        "bind 10.96.1.1:6379",
        "balance roundrobin",
        "server s0 192.0.2.1:31002 check",
        "server s1 192.0.2.2:31003 check",
        *empty[1:],
    ]


def test_headless_services_and_those_without_address_are_not_proxied() -> None:
    pending = TableService(name="new", ports=(ServicePort("", 80),))
    text = render_config(replace(TABLE, services=(HEADLESS, pending)))

    # Only the always-present idle listener: HAProxy starts with no Service at all.
    assert list(_sections(text)) == ["idle"]
    assert "bind unix@idle.sock" in text


def test_a_port_without_ready_endpoints_still_binds_and_has_no_server() -> None:
    empty = replace(RED, ports=(ServicePort("", 80),))

    sections = _sections(render_config(replace(TABLE, services=(empty,))))

    assert sections["default.red:80"][:2] == ["bind 10.96.1.0:80", "balance roundrobin"]
    assert all(
        line.endswith(" 0.0.0.0:0 check disabled") for line in sections["default.red:80"][2:]
    )


def test_names_are_safe_for_haproxy_and_ipv6_is_bracketed() -> None:
    v6 = TableService(
        name="v6/x",
        cluster_ip="fd00::10",
        ports=(ServicePort("", 80, backends=(Backend("fd00::1", 30000, "p/q"),)),),
    )

    text = render_config(replace(TABLE, services=(v6,)))

    assert "bind [fd00::10]:80" in text and "server s0 [fd00::1]:30000 check" in text
    assert section_name(v6, "", 80) == "default.v6_x:80"


def test_the_first_table_starts_haproxy_and_routes_the_range() -> None:
    step = plan_step(TABLE, None, running=False, routed="")

    assert (step.route, step.action) == ("10.96.0.0/12", "start")
    assert step.text == render_config(TABLE)


def test_a_changed_service_set_reloads_a_new_version_alone_does_nothing() -> None:
    current = plan_step(TABLE, None, False, "").state

    same = plan_step(replace(TABLE, version=9), current, running=True, routed="10.96.0.0/12")
    fewer = plan_step(replace(TABLE, services=(RED,)), current, True, "10.96.0.0/12")

    assert (same.route, same.action) == ("", "none")
    assert (fewer.action, fewer.reason) == ("reload", "sections removed: shop.blue:redis")


def test_an_adopted_proxy_is_reloaded_only_when_its_config_differs() -> None:
    applied = render_config(TABLE)

    same = plan_step(replace(TABLE, version=4), None, True, "10.96.0.0/12", applied_text=applied)
    other = plan_step(replace(TABLE, services=(RED,)), None, True, "", applied_text=applied)
    dead = plan_step(TABLE, None, running=False, routed="10.96.0.0/12", applied_text=applied)

    assert same.action == "none" and other.action == "reload"
    assert dead.action == "start" and dead.route == ""


def test_the_route_command_makes_the_range_local_on_lo() -> None:
    assert local_route_command("10.96.0.0/12") == [
        *("ip", "-4", "route", "replace", "local", "10.96.0.0/12", "dev", "lo"),
    ]
    assert local_route_command("fd00:96::/108")[1] == "-6"


def test_a_route_failure_is_one_sentence_and_nothing_starts(tmp_path: Path) -> None:
    from agent.nodeproxy.route import RouteError

    def refuse(cidr: str) -> None:
        raise RouteError(f"cannot make the service range {cidr} local (...): not permitted")

    told: list[tuple[str, str]] = []
    proxy = NodeProxy(
        tmp_path / "np",
        FakeClock(),
        "/nonexistent/haproxy",
        route=refuse,
        notify=lambda reason, message: told.append((reason, message)),
    )

    for _ in range(2):
        with pytest.raises(RouteError):
            asyncio.run(proxy._apply(TABLE))
    assert not (tmp_path / "np" / "haproxy.cfg").exists()
    assert proxy.serving_version == -1
    # One node event, however often the table comes.
    assert told == [
        (
            "NodeProxyUnavailable",
            "cannot make the service range 10.96.0.0/12 local (...): not permitted; "
            "Services' cluster IPs are not served on this node",
        )
    ]


def test_the_range_is_made_local_before_any_listener_is_test_bound(tmp_path: Path) -> None:
    # An agent container that restarted has a fresh namespace: no cluster IP binds there
    # before the route, so probing first refused every listener of the node.
    calls: list[str] = []

    class Probed(Exception):
        pass

    def probe(address: str, port: int) -> None:
        calls.append("probe")
        raise Probed

    proxy = NodeProxy(
        tmp_path / "np",
        FakeClock(),
        "/nonexistent/haproxy",
        route=lambda cidr: calls.append(f"route {cidr}"),
        probe=probe,
    )

    with pytest.raises(Probed):
        asyncio.run(proxy._apply(TABLE))
    assert calls == ["route 10.96.0.0/12", "probe"]


def test_an_http_port_is_proxied_at_layer_7_retrying_only_idempotent_requests() -> None:
    web = TableService(
        name="web",
        cluster_ip="10.96.1.2",
        ports=(
            ServicePort(
                "", 80, app_protocol="http", backends=(Backend("192.0.2.1", 31009, "web-a"),)
            ),
        ),
    )

    sections = _sections(render_config(replace(TABLE, services=(web, RED))))

    assert sections["default.web:80"][2:5] == [
        "mode http",
        "retry-on conn-failure empty-response junk-response",
        "http-request disable-l7-retry unless { method GET HEAD OPTIONS PUT DELETE }",
    ]
    assert not any("mode" in line for line in sections["default.red:6379"])


def test_a_udp_rules_failure_is_one_node_event_and_never_raises(tmp_path: Path) -> None:
    import subprocess

    from agent.nodeproxy.udpkernel import UdpRules

    def no_nft(command: list[str], stdin: str) -> subprocess.CompletedProcess[str]:
        raise FileNotFoundError(2, "No such file or directory", command[0])

    told: list[tuple[str, str]] = []
    backend = Backend("192.0.2.1", 31053, "dns-a")
    dns = TableService(
        name="dns",
        cluster_ip="10.96.0.10",
        ports=(ServicePort("dns", 53, "UDP", backends=(backend,)),),
    )
    proxy = NodeProxy(
        tmp_path / "np",
        FakeClock(),
        notify=lambda reason, message: told.append((reason, message)),
        udp=UdpRules(tmp_path / "np", "n1", run=no_nft, local=lambda address: False),
    )

    for _ in range(2):
        asyncio.run(proxy._apply_udp(replace(TABLE, services=(RED, dns))))

    assert len(told) == 1 and told[0][0] == "NodeProxyUnavailable"
    assert told[0][1].startswith("cannot program UDP Services (nft: ")
    assert "install nftables" in told[0][1]
