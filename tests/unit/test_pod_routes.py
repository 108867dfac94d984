"""Pods' routes to their node proxy when the agent runs in a container of its own.

Which route (choose_via: none where the agent is the pods' gateway, else via the agent's
address on their network), the commands that leave exactly it in a namespace
(route_commands: idempotent, only our routes touched), and the shell's timing
(PodRoutes: at each start once the range is known, a sweep of every running container --
the adopted ones -- on the first table and on a new range) over a fake namespace.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import pytest

from agent.iproute import Route, parse_routes
from agent.nodeproxy.podroute import (
    PROTO,
    PodNetwork,
    choose_via,
    ours,
    route_commands,
)
from agent.nodeproxy.podroutes import PodRouteError, PodRoutes
from agent.nodeproxy.table import ServiceTable
from agent.runtime.port import ContainerInfo
from kernel.processes import runs_config, same_network_namespace

NET = [PodNetwork("172.30.0.0/16", "172.30.0.1")]
CIDR = "10.96.0.0/12"
OURS = str(PROTO)
# `ip -j -4 route show` in a container on a compose network, our route present.
IP_JSON = json.dumps(
    [
        {"dst": "default", "gateway": "172.30.0.1", "dev": "eth0", "flags": []},
        {"dst": "10.96.0.0/12", "gateway": "172.30.0.3", "dev": "eth0", "protocol": OURS},
        {
            "dst": "172.30.0.0/16",
            "dev": "eth0",
            "protocol": "kernel",
            "scope": "link",
            "prefsrc": "172.30.0.5",
            "flags": [],
        },
    ]
)


# -- which route ---------------------------------------------------------------------------


def test_no_route_where_the_agent_is_the_pods_gateway() -> None:
    via = choose_via("demo", NET, {"127.0.0.1", "172.30.0.1", "192.0.2.7"})
    assert (via.address, via.trouble) == ("", False)
    assert "gateway 172.30.0.1 is this machine's" in via.why


def test_an_agent_in_a_container_on_the_network_is_the_next_hop() -> None:
    via = choose_via("demo", NET, {"127.0.0.1", "172.30.0.3"})
    assert (via.address, via.trouble) == ("172.30.0.3", False)


def test_a_gateway_left_out_of_ipam_is_the_subnets_first_address() -> None:
    via = choose_via("demo", [PodNetwork("172.30.0.0/16")], {"172.30.0.1"})
    assert via.address == ""
    assert not via.trouble


def test_an_agent_off_the_network_cannot_be_reached_and_says_so() -> None:
    via = choose_via("demo", NET, {"127.0.0.1", "10.0.0.2"})
    assert via.address == ""
    assert via.trouble
    assert "attach the agent to demo" in via.why


def test_an_ipv6_only_network_gets_no_route() -> None:
    via = choose_via("v6", [PodNetwork("fd00::/64", "fd00::1")], {"fd00::2"})
    assert via.address == ""
    assert via.trouble


# -- which commands ------------------------------------------------------------------------


def test_parse_routes_reads_ip_json_and_nothing_else() -> None:
    routes = parse_routes(IP_JSON)
    assert routes[1] == Route("10.96.0.0/12", "172.30.0.3", OURS)
    assert ours(routes[1])
    assert not ours(routes[0])
    assert parse_routes("") == ()
    assert parse_routes("not json") == ()
    assert parse_routes('{"dst": "x"}') == ()


def test_a_namespace_without_the_route_gets_it_marked_as_ours() -> None:
    assert route_commands([Route("default", "172.30.0.1")], CIDR, "172.30.0.3") == [
        ["ip", "-4", "route", "replace", CIDR, "via", "172.30.0.3", "proto", OURS]
    ]


def test_a_namespace_with_the_route_gets_nothing() -> None:
    assert route_commands(parse_routes(IP_JSON), CIDR, "172.30.0.3") == []


def test_our_route_to_an_old_address_is_replaced() -> None:
    # The agent's container restarted with another address on the network.
    assert route_commands(parse_routes(IP_JSON), CIDR, "172.30.0.9") == [
        ["ip", "-4", "route", "replace", CIDR, "via", "172.30.0.9", "proto", OURS]
    ]


def test_a_route_to_the_range_that_is_not_ours_is_left_alone() -> None:
    theirs = [Route(CIDR, "172.30.0.50", "static")]
    assert route_commands(theirs, CIDR, "172.30.0.3") == []


def test_our_route_to_an_old_range_goes_and_the_new_one_comes() -> None:
    current = [Route("10.100.0.0/16", "172.30.0.3", OURS), Route("10.200.0.0/16", "", "boot")]
    assert route_commands(current, "10.96.0.1/12", "172.30.0.3") == [
        ["ip", "-4", "route", "del", "10.100.0.0/16", "proto", OURS],
        ["ip", "-4", "route", "replace", CIDR, "via", "172.30.0.3", "proto", OURS],
    ]


def test_no_range_removes_ours_only() -> None:
    current = [Route(CIDR, "172.30.0.3", OURS), Route("10.200.0.0/16", "172.30.0.8")]
    assert route_commands(current, "", "172.30.0.3") == [
        ["ip", "-4", "route", "del", CIDR, "proto", OURS]
    ]


# -- when: the shell over fake namespaces ----------------------------------------------------


class FakeNamespaces:
    """Each pid's main table; runs the commands route_commands makes, as `ip` would."""

    def __init__(self) -> None:
        self.tables: dict[int, list[Route]] = {}
        self.commands: list[tuple[int, list[str]]] = []
        self.broken = False

    def __call__(self, pid: int, command: Sequence[str]) -> str:
        if self.broken:
            raise PodRouteError("nsenter: reassociate to namespace 'ns/net' failed")
        routes = self.tables.setdefault(pid, [Route("default", "172.30.0.1")])
        if list(command[:3]) == ["ip", "-j", "-4"]:
            return json.dumps(
                [{"dst": r.dst, "gateway": r.gateway, "protocol": r.protocol} for r in routes]
            )
        self.commands.append((pid, list(command)))
        verb, dst = command[3], command[4]
        routes[:] = [r for r in routes if r.dst != dst]
        if verb == "replace":
            routes.append(Route(dst, command[6], command[8]))
        return ""


def container(pid: int, state: str = "running") -> ContainerInfo:
    return ContainerInfo(id=f"c{pid}", name=f"pod-{pid}", image="x", state=state, pid=pid)


def routes_via(netns: FakeNamespaces, pid: int) -> list[tuple[str, str]]:
    return [(r.dst, r.gateway) for r in netns.tables.get(pid, []) if ours(r)]


def sweep(routes: PodRoutes, cidr: str) -> None:
    """Offer a table with `cidr` and let run() take it (one round)."""

    async def go() -> None:
        task = asyncio.create_task(routes.run())
        routes.offer(ServiceTable(version=1, service_cidr=cidr))
        while routes.swept != cidr:
            await asyncio.sleep(0)
        task.cancel()

    asyncio.run(asyncio.wait_for(go(), 5))


def make(netns: FakeNamespaces, running: list[ContainerInfo]) -> tuple[PodRoutes, list[str]]:
    told: list[str] = []

    async def listed() -> list[ContainerInfo]:
        return running

    routes = PodRoutes("172.30.0.3", listed, lambda reason, msg: told.append(reason), netns)
    return routes, told


def test_a_start_before_the_range_is_known_is_routed_by_the_first_sweep() -> None:
    netns = FakeNamespaces()
    adopted = [container(101), container(102), container(103, "exited")]
    routes, _ = make(netns, adopted)
    routes.after_start(container(101))
    assert netns.commands == []
    sweep(routes, CIDR)
    assert routes_via(netns, 101) == [(CIDR, "172.30.0.3")]
    assert routes_via(netns, 102) == [(CIDR, "172.30.0.3")]
    assert 103 not in netns.tables


def test_a_start_after_the_range_is_known_is_routed_at_once_and_only_once() -> None:
    netns = FakeNamespaces()
    routes, _ = make(netns, [])
    sweep(routes, CIDR)
    routes.after_start(container(201))
    routes.after_start(container(201))  # again (a sweep meeting a start): no command
    assert netns.commands == [
        (201, ["ip", "-4", "route", "replace", CIDR, "via", "172.30.0.3", "proto", OURS])
    ]


def test_a_new_range_moves_every_running_pods_route_and_spares_foreign_routes() -> None:
    netns = FakeNamespaces()
    running = [container(301)]
    routes, _ = make(netns, running)
    sweep(routes, CIDR)
    netns.tables[301].append(Route("10.200.0.0/16", "172.30.0.8", "static"))
    sweep(routes, "10.100.0.0/16")
    assert routes_via(netns, 301) == [("10.100.0.0/16", "172.30.0.3")]
    assert Route("10.200.0.0/16", "172.30.0.8", "static") in netns.tables[301]


def test_failures_never_raise_and_are_told_once_until_routing_works() -> None:
    netns = FakeNamespaces()
    routes, told = make(netns, [])
    sweep(routes, CIDR)
    netns.broken = True
    me = os.getpid()  # alive: a real failure, not a container that ended meanwhile
    routes.after_start(container(me))
    routes.after_start(container(me))
    assert told == ["PodRouteFailed"]
    netns.broken = False
    routes.after_start(container(me))
    netns.broken = True
    routes.after_start(container(me))
    assert told == ["PodRouteFailed", "PodRouteFailed"]


def test_a_container_gone_before_its_route_is_not_a_failure() -> None:
    netns = FakeNamespaces()
    netns.broken = True
    routes, told = make(netns, [])
    sweep(routes, CIDR)
    routes.after_start(container(2**22 + 12345))  # above any pid_max: no such process
    assert told == []


# -- HAProxy found by its pid file is ours only in our namespace -----------------------------


def test_runs_config_needs_the_config_in_the_command_line(tmp_path: Path) -> None:
    config = tmp_path / "haproxy.cfg"
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)", str(config)])
    try:
        assert same_network_namespace(child.pid)
        # Until the child has exec'd, its command line is still ours; while it execs, it is
        # empty (and counts as its config's, kernel/processes.py): wait for the new one.
        cmdline = Path(f"/proc/{child.pid}/cmdline")
        deadline = time.monotonic() + 10
        while str(config).encode() not in cmdline.read_bytes().split(b"\0"):
            assert time.monotonic() < deadline, "the child never ran with its command line"
            time.sleep(0.01)
        assert runs_config(child.pid, config)
        assert not runs_config(child.pid, tmp_path / "other.cfg")
    finally:
        child.kill()
        child.wait()
    assert not runs_config(child.pid, config)


def test_a_namespace_proc_cannot_show_leaves_the_command_line_to_decide(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def refused(path: str) -> str:
        raise PermissionError(path)

    monkeypatch.setattr(os, "readlink", refused)
    assert same_network_namespace(os.getpid())
