"""haproxy.cfg rendering: sections, pre-allocated slots, stable slot assignment, disabled slots."""

from __future__ import annotations

from pathlib import Path

import pytest

from master.lb.model import Endpoint, LbService, LbSettings, LbState
from master.lb.slots import assign_slots, slot_count
from tests.lb_support import render_config

SOCK = Path("/run/pinnace/lb/runtime.sock")
SETTINGS = LbSettings(listen_address="127.0.0.1")


def ep(pod: str, port: int, *, ready: bool = True, draining: bool = False) -> Endpoint:
    return Endpoint(pod=pod, address="10.0.0.1", port=port, ready=ready, draining=draining)


def svc(name: str, port_name: str, listen: int, *endpoints: Endpoint) -> LbService:
    return LbService(name=name, port_name=port_name, listen_port=listen, endpoints=endpoints)


def sections(text: str) -> dict[str, list[str]]:
    """Section header -> its indented lines (comments stripped)."""
    out: dict[str, list[str]] = {}
    current = ""
    for raw in text.splitlines():
        line = raw.split("#", 1)[0].rstrip()
        if not line:
            continue
        if not line.startswith(" "):
            current = line
            out[current] = []
        else:
            out[current].append(line.strip())
    return out


def servers(text: str, backend: str) -> list[str]:
    return [line for line in sections(text)[f"backend {backend}"] if line.startswith("server ")]


def test_global_section_enables_master_worker_and_an_admin_socket_exposing_listeners() -> None:
    cfg = sections(render_config([], SETTINGS, SOCK))

    assert "master-worker" in cfg["global"]
    assert f"stats socket {SOCK} mode 600 level admin expose-fd listeners" in cfg["global"]


def test_defaults_are_tcp_with_retries_redispatch_and_health_checks() -> None:
    cfg = sections(render_config([], SETTINGS, SOCK))

    defaults = cfg["defaults"]
    assert "mode tcp" in defaults
    assert "retries 3" in defaults
    assert "option redispatch 1" in defaults
    assert "timeout connect 500ms" in defaults
    assert (
        "default-server init-addr none check inter 1000ms fall 2 rise 1 downinter 100ms"
        " observe layer4 error-limit 1 on-error mark-down"
    ) in defaults
    assert "option tcplog" not in defaults


def test_threads_are_haproxys_default_unless_set() -> None:
    default = sections(render_config([], SETTINGS, SOCK))["global"]
    one = sections(render_config([], LbSettings(listen_address="127.0.0.1", threads=1), SOCK))[
        "global"
    ]

    assert not any(line.startswith("nbthread") for line in default)
    assert "nbthread 1" in one


def test_connection_logging_is_opt_in() -> None:
    settings = LbSettings(listen_address="127.0.0.1", log_connections=True)

    cfg = sections(render_config([], settings, SOCK))

    assert "option tcplog" in cfg["defaults"]
    assert any(line.startswith("log stderr") for line in cfg["global"])


def test_one_frontend_and_backend_per_service_port() -> None:
    services = [
        svc("web", "http", 18080, ep("web-1", 31000)),
        svc("web", "admin", 18081),
        svc("db", "", 15432),
    ]

    cfg = sections(render_config(services, SETTINGS, SOCK))

    assert cfg["frontend fe_web.http"] == ["bind 127.0.0.1:18080", "default_backend be_web.http"]
    assert cfg["frontend fe_web.admin"] == [
        "bind 127.0.0.1:18081",
        "default_backend be_web.admin",
    ]
    assert cfg["frontend fe_db"] == ["bind 127.0.0.1:15432", "default_backend be_db"]
    assert {k for k in cfg if k.startswith("backend ")} == {
        "backend be_web.http",
        "backend be_web.admin",
        "backend be_db",
    }


def test_ipv6_listen_and_endpoint_addresses_are_bracketed() -> None:
    settings = LbSettings(listen_address="::1")
    endpoint = Endpoint(pod="p", address="fd00::5", port=8080, ready=True)

    text = render_config([svc("web", "", 18080, endpoint)], settings, SOCK)

    assert sections(text)["frontend fe_web"][0] == "bind [::1]:18080"
    assert servers(text, "be_web")[0] == "server s0 [fd00::5]:8080"


def test_backend_preallocates_disabled_empty_slots() -> None:
    text = render_config([svc("web", "http", 18080, ep("a", 1), ep("b", 2))], SETTINGS, SOCK)

    lines = servers(text, "be_web.http")
    assert len(lines) == 16
    assert lines[:2] == ["server s0 10.0.0.1:1", "server s1 10.0.0.1:2"]
    assert lines[2:] == [f"server s{i} 0.0.0.0:0 disabled" for i in range(2, 16)]


def test_slot_count_is_the_next_power_of_two_at_least_the_minimum() -> None:
    assert [slot_count(n, 16) for n in (0, 1, 16, 17, 33)] == [16, 16, 16, 32, 64]
    assert slot_count(5, 4) == 8
    with pytest.raises(ValueError):
        slot_count(1, 0)


def test_many_endpoints_get_a_bigger_backend() -> None:
    endpoints = [ep(f"p{i:02}", 30000 + i) for i in range(17)]

    text = render_config([svc("web", "http", 18080, *endpoints)], SETTINGS, SOCK)

    assert len(servers(text, "be_web.http")) == 32


def test_not_ready_and_draining_endpoints_render_disabled_with_their_address() -> None:
    services = [
        svc("web", "", 18080, ep("a", 1), ep("b", 2, ready=False), ep("c", 3, draining=True))
    ]

    lines = servers(render_config(services, SETTINGS, SOCK), "be_web")

    assert lines[:3] == [
        "server s0 10.0.0.1:1",
        "server s1 10.0.0.1:2 disabled",
        "server s2 10.0.0.1:3 disabled",
    ]


def test_pod_names_are_kept_as_comments_and_cannot_break_the_line() -> None:
    text = render_config([svc("web", "", 18080, ep("web-1\nbind :1", 1))], SETTINGS, SOCK)

    assert "    server s0 10.0.0.1:1  # web-1_bind__1" in text.splitlines()


def test_fresh_assignment_does_not_depend_on_endpoint_order() -> None:
    forward = [svc("web", "", 18080, ep("a", 1), ep("b", 2), ep("c", 3))]
    backward = [svc("web", "", 18080, ep("c", 3), ep("b", 2), ep("a", 1))]

    assert render_config(forward, SETTINGS, SOCK) == render_config(backward, SETTINGS, SOCK)


def test_surviving_endpoints_keep_their_slot_across_renders() -> None:
    before = [svc("web", "", 18080, ep("a", 1), ep("b", 2), ep("c", 3))]
    previous = assign_slots(LbState(), before, 16)
    after = [svc("web", "", 18080, ep("c", 3), ep("aa", 4))]

    lines = servers(render_config(after, SETTINGS, SOCK, previous=previous), "be_web")

    assert lines[2] == "server s2 10.0.0.1:3"  # c stays where it was
    assert lines[0] == "server s0 0.0.0.0:0 disabled"  # a left
    assert lines[1] == "server s1 0.0.0.0:0 disabled"  # b left
    assert lines[3] == "server s3 10.0.0.1:4"  # the newcomer takes a never-used slot


@pytest.mark.parametrize(
    ("services", "message"),
    [
        ([svc("Web", "", 18080)], "not a DNS label"),
        ([svc("web", "http_x", 18080)], "not a DNS label"),
        ([svc("web", "a", 18080), svc("web", "a", 18081)], "given twice"),
        ([svc("web", "a", 18080), svc("db", "", 18080)], "listen port 18080"),
        ([svc("web", "", 0)], "listen port 0"),
        (
            [svc("web", "", 18080, Endpoint("p", "db.local", 5432, ready=True))],
            "not an IP address",
        ),
        ([svc("web", "", 18080, ep("p", 0))], "not in 1..65535"),
    ],
)
def test_invalid_input_is_refused_with_a_clear_message(
    services: list[LbService], message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        render_config(services, SETTINGS, SOCK)


def test_one_port_on_two_addresses_is_two_listeners_and_one_address_is_a_clash() -> None:
    a = LbService("a", "", 8080, (), bind_addresses=("127.0.0.2",))
    b = LbService("b", "", 8080, (), bind_addresses=("127.0.0.3",))
    wildcard = LbService("w", "", 8080, (), bind_addresses=("0.0.0.0",))

    assert [x.service for x in assign_slots(LbState(), [a, b], 4).backends] == ["a", "b"]
    with pytest.raises(ValueError, match="listen port 8080 wanted by both"):
        assign_slots(LbState(), [a, wildcard], 4)
    with pytest.raises(ValueError, match="listen port 8080 wanted by both"):
        assign_slots(LbState(), [a, LbService("c", "", 8080, (), bind_addresses=("127.0.0.2",))], 4)
