"""host-gw (agent/hostgw): which nodes' pod subnets a machine routes, the commands that do
it, the node's pod bridge, and the shell that applies them (with a fake runner)."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable, Sequence

from agent.dns.render import names_from_table, srv_from_table
from agent.hostgw.bridge import BRIDGE_OPTIONS, BridgeNet, BridgePlan, bridge_plan
from agent.hostgw.plan import (
    NodeSubnet,
    firewall_commands,
    plan_routes,
    route_commands,
)
from agent.hostgw.routes import HostRouteError, HostRoutes
from agent.iproute import Route, parse_routes
from agent.nodeproxy.table import Backend, ServicePort, ServiceTable, TableService
from kernel.clock import FakeClock

CLUSTER = "10.244.0.0/16"
LAN = "192.168.1.0/24"
SUBNETS = (
    NodeSubnet("n1", "192.168.1.10", "10.244.0.0/24"),
    NodeSubnet("n2", "192.168.1.11", "10.244.1.0/24"),
    NodeSubnet("far", "172.31.5.9", "10.244.2.0/24"),
    NodeSubnet("twin", "127.0.0.1", "10.244.3.0/24"),
)
# n1's machine: its LAN address, and its own pod bridge.
LOCAL = {"192.168.1.10", "10.244.0.1", "127.0.0.1"}
NETWORKS = [LAN, "10.244.0.0/24", "127.0.0.0/8"]


def test_the_other_nodes_on_this_lan_are_routed_and_a_node_elsewhere_refused() -> None:
    plan = plan_routes("n1", CLUSTER, SUBNETS, LOCAL, NETWORKS)

    assert plan.routes == (("10.244.1.0/24", "192.168.1.11"),)
    # n1 itself and a node on this very machine need no route; their bridges are here.
    assert plan.reachable == {"n1", "n2", "twin"}
    (refused,) = plan.refused
    assert refused.node == "far"
    assert "172.31.5.9 is on no network this machine is attached to" in refused.why
    assert "one L2 network" in refused.why


def test_a_subnet_overlapping_a_network_of_this_machine_or_outside_the_range_is_refused() -> None:
    subnets = (
        NodeSubnet("n2", "10.1.0.12", "10.244.1.0/24"),
        NodeSubnet("n3", "192.168.1.12", "10.244.9.0/24"),
        NodeSubnet("n4", "192.168.1.13", "192.168.1.0/24"),
    )

    wide = plan_routes("n1", CLUSTER, subnets[:1], LOCAL, [*NETWORKS, "10.0.0.0/8"])
    stale = plan_routes("n1", CLUSTER, subnets[1:], LOCAL, [*NETWORKS, "10.244.9.0/24"])

    assert wide.routes == stale.routes == ()
    assert "pod subnet 10.244.1.0/24 overlaps this machine's network 10.0.0.0/8" in (
        wide.refused[0].why
    )
    assert [r.node for r in stale.refused] == ["n3", "n4"]
    assert "overlaps this machine's network 10.244.9.0/24" in stale.refused[0].why
    assert "is not in 10.244.0.0/16" in stale.refused[1].why


def test_without_a_cluster_range_nothing_is_planned() -> None:
    assert plan_routes("n1", "", SUBNETS, LOCAL, NETWORKS).routes == ()


def _routes(*rows: dict[str, str]) -> tuple[Route, ...]:
    return parse_routes(json.dumps(list(rows)))


def test_route_commands_add_replace_and_remove_only_ours_inside_the_range() -> None:
    current = _routes(
        {"dst": "10.244.1.0/24", "gateway": "192.168.1.99", "protocol": "114"},  # moved
        {"dst": "10.244.5.0/24", "gateway": "192.168.1.15", "protocol": "114"},  # gone
        {"dst": "10.9.0.0/24", "gateway": "192.168.1.15", "protocol": "114"},  # another range
        {"dst": "10.244.7.0/24", "gateway": "192.168.1.16", "protocol": "static"},  # not ours
        {"dst": "10.244.2.0/24", "gateway": "192.168.1.12", "protocol": "114"},  # in place
    )
    want = [("10.244.1.0/24", "192.168.1.11"), ("10.244.2.0/24", "192.168.1.12")]

    commands = route_commands(current, CLUSTER, want)

    assert commands == [
        ["ip", "-4", "route", "del", "10.244.5.0/24", "proto", "114"],
        ["ip", "-4", "route", "replace", "10.244.1.0/24", "via", "192.168.1.11", "proto", "114"],
    ]
    applied = _routes(
        {"dst": "10.244.1.0/24", "gateway": "192.168.1.11", "protocol": "114"},
        {"dst": "10.244.2.0/24", "gateway": "192.168.1.12", "protocol": "114"},
    )
    assert route_commands(applied, CLUSTER, want) == []
    assert parse_routes("not json") == ()


RULE = '-s 10.244.0.0/16 -d 10.244.0.0/16 -m comment --comment "pinnace pod network 10.244.0.0/16"'


def test_the_firewall_rule_is_put_and_kept_ahead_of_dockers_rules() -> None:
    empty = "-P POSTROUTING ACCEPT\n"
    inserted = firewall_commands("nat", "POSTROUTING", "RETURN", empty, CLUSTER)
    (insert,) = inserted
    assert insert[:8] == ["iptables", "-w", "5", "-t", "nat", "-I", "POSTROUTING", "1"]
    assert insert[-2:] == ["-j", "RETURN"] and "pinnace pod network 10.244.0.0/16" in insert

    ahead = f"-A POSTROUTING {RULE} -j RETURN\n-A POSTROUTING -s 10.244.1.0/24 -j MASQUERADE\n"
    assert firewall_commands("nat", "POSTROUTING", "RETURN", ahead, CLUSTER) == []
    # Another cluster's range ahead of ours is no reason to move.
    other = RULE.replace("10.244.", "10.9.")
    other = f"-A POSTROUTING {other} -j RETURN\n"
    assert firewall_commands("nat", "POSTROUTING", "RETURN", other + ahead, CLUSTER) == []
    # Docker made a network and put its masquerade first: ours is moved back to the head.
    behind = f"-A POSTROUTING -s 10.244.2.0/24 ! -o br-1 -j MASQUERADE\n{ahead}"
    moved = firewall_commands("nat", "POSTROUTING", "RETURN", behind, CLUSTER)
    assert [c[5] for c in moved] == ["-D", "-I"]


def _net(name: str, subnet: str, attached: int = 0, open_: bool = True) -> BridgeNet:
    return BridgeNet(name, subnet, attached, dict(BRIDGE_OPTIONS) if open_ else {})


def test_the_bridge_is_made_used_or_made_again_when_empty() -> None:
    want, base = "10.244.1.0/24", "pinnace-pods-n1"

    assert bridge_plan("n1", [], want) == BridgePlan("create", base)
    assert bridge_plan("n1", [_net(base, want, 3)], want) == BridgePlan("use", base)
    # An old subnet with no pod left, or the subnet made before the gateway mode was set.
    for old in (_net(base, "10.244.9.0/24"), _net(base, want, open_=False)):
        assert bridge_plan("n1", [old], want) == BridgePlan("create", base, (base,))
    # Made without the gateway mode but with pods on it: kept (they would be cut off).
    assert bridge_plan("n1", [_net(base, want, 2, open_=False)], want).action == "use"


def test_a_new_subnet_gets_a_bridge_beside_the_old_one_still_holding_pods() -> None:
    """The bug: the node's subnet changed while its old bridge had pods, and every new pod
    went on Docker's default bridge until the agent restarted."""
    want, base = "10.245.3.0/24", "pinnace-pods-n1"
    old = _net(base, "10.244.1.0/24", attached=2)

    moved = bridge_plan("n1", [old], want)
    assert moved == BridgePlan("create", f"{base}-10-245-3-0-24", (), retry=True)
    # Later, the old pods gone: the new bridge is used and the old one removed.
    new = _net(moved.name, want, attached=1)
    assert bridge_plan("n1", [_net(base, "10.244.1.0/24"), new], want) == BridgePlan(
        "use", moved.name, (base,)
    )
    # Only an overlapping new subnet must wait for the old pods (Docker refuses it).
    wait = bridge_plan("n1", [old], "10.244.0.0/16")
    assert (wait.action, wait.name, wait.retry) == ("wait", "", True)
    assert "overlaps this node's new pod subnet 10.244.0.0/16" in wait.why
    assert bridge_plan("n1", [_net(base, "10.244.1.0/24")], "10.244.0.0/16").action == "create"


class _Runner:
    def __init__(self, routes: str = "[]", fail: str = "") -> None:
        self.routes = routes
        self.fail = fail
        self.ran: list[list[str]] = []

    def __call__(self, command: Sequence[str]) -> str:
        self.ran.append(list(command))
        if self.fail and self.fail in command:
            raise HostRouteError(f"{self.fail} failed")
        if command[:2] == ["ip", "-j"]:
            return self.routes
        if "-S" in command:
            return "-P X ACCEPT\n"
        return ""


# The shell's resync in these tests (fake seconds).
RESYNC = 0.01


def _table() -> ServiceTable:
    return ServiceTable(1, cluster_cidr=CLUSTER, subnets=SUBNETS)


def _run_until(
    routes: HostRoutes, clock: FakeClock, check: Callable[[], object], what: str
) -> None:
    """Runs the shell's loop on `_table()` until `check()` holds, moving `clock` on by
    the resync whenever the loop waits for it. Its applies run on a thread: a fixed number
    of short sleeps was too few on a loaded machine, and on the fake clock no resync ever
    came (a failure said at every resync passed "said once")."""

    async def scenario() -> None:
        task = asyncio.create_task(routes.run())
        routes.offer(_table())
        deadline = time.monotonic() + 30
        try:
            while not check():
                assert time.monotonic() < deadline, f"timed out waiting for {what}"
                if clock.sleepers:
                    clock.advance(RESYNC)
                await asyncio.sleep(0.01)
        finally:
            task.cancel()

    asyncio.run(scenario())


def test_the_shell_plans_on_offer_says_a_refusal_once_and_applies() -> None:
    told: list[tuple[str, str]] = []
    runner = _Runner()
    routes = HostRoutes(
        "n1",
        FakeClock(),
        lambda reason, text: told.append((reason, text)),
        runner=runner,
        interfaces=lambda: (LOCAL, NETWORKS),
    )

    routes.offer(_table())
    routes.offer(_table())
    ran = routes.apply(routes.plan, CLUSTER)

    assert routes.reachable == {"n1", "n2", "twin"}
    assert [reason for reason, _ in told] == ["PodSubnetUnreachable"]
    assert told[0][1].startswith("node far: its address 172.31.5.9")
    assert ran[0] == [
        "ip", "-4", "route", "replace", "10.244.1.0/24", "via", "192.168.1.11", "proto", "114",
    ]  # fmt: skip
    assert [c[6] for c in ran[1:]] == ["DOCKER-USER", "POSTROUTING"]


def test_a_failed_command_is_said_once_and_a_removal_someone_else_did_is_no_failure() -> None:
    told: list[str] = []
    runner = _Runner(fail="replace")
    clock = FakeClock()
    routes = HostRoutes(
        "n1",
        clock,
        lambda reason, text: told.append(reason),
        runner=runner,
        interfaces=lambda: (LOCAL, NETWORKS),
        resync=RESYNC,
    )

    # Three applies tried the failing command: the first two were handled whole (each
    # apply begins once the one before was), so a failure said again would be in `told`.
    _run_until(routes, clock, lambda: sum("replace" in c for c in runner.ran) >= 3, "three applies")

    assert told == ["PodSubnetUnreachable", "PodRoutesFailed"]
    assert routes.applied is None
    stale = '[{"dst": "10.244.8.0/24", "gateway": "192.168.1.30", "protocol": "114"}]'
    gone = HostRoutes("n1", FakeClock(), runner=_Runner(stale, fail="del"))
    assert ["ip", "-4", "route", "del", "10.244.8.0/24", "proto", "114"] in gone.apply(
        plan_routes("n1", CLUSTER, (), LOCAL, NETWORKS), CLUSTER
    )


def test_dns_names_pods_of_routed_nodes_by_their_own_address_and_container_port() -> None:
    here = Backend("192.168.1.10", 32001, "db-0", "n1", "db-0", "db", "10.244.0.5", 80)
    routed = Backend("192.168.1.11", 32002, "db-1", "n2", "db-1", "db", "10.244.1.5", 80)
    far = Backend("172.31.5.9", 32003, "db-2", "far", "db-2", "db", "10.244.2.5", 80)
    port = ServicePort("web", 80, backends=(here, routed, far))
    db = TableService("db", "", headless=True, ports=(port,))
    table = ServiceTable(1, (db,), cluster_cidr=CLUSTER, subnets=SUBNETS)
    reach = frozenset({"n1", "n2"})

    names = {(n.hostname, n.addresses) for n in names_from_table(table, reach)}
    srv = {(r.target, r.port) for r in srv_from_table(table, reach)}

    assert ("", ("10.244.0.5", "10.244.1.5", "172.31.5.9")) in names
    assert ("db-1", ("10.244.1.5",)) in names and ("db-2", ("172.31.5.9",)) in names
    assert srv == {
        ("db-0.db.default.svc", 80),
        ("db-1.db.default.svc", 80),
        ("db-2.db.default.svc", 32003),
    }
    # Without routes (or without a pod range) every pod is named by its node's address.
    assert ("db-1", ("192.168.1.11",)) in {
        (n.hostname, n.addresses) for n in names_from_table(table)
    }


def test_the_rules_in_place_and_the_nodes_unreached_are_said_after_each_apply() -> None:
    said: list[tuple[str, tuple[tuple[str, str], ...]]] = []

    clock = FakeClock()

    def shell(runner: _Runner) -> HostRoutes:
        return HostRoutes(
            "n1",
            clock,
            runner=runner,
            interfaces=lambda: (LOCAL, NETWORKS),
            resync=RESYNC,
            report=lambda ready, unreached: said.append((ready, unreached)),
        )

    _run_until(shell(_Runner()), clock, lambda: said, "the first apply said")
    # Its own subnet ready; "far" (on no network of this machine) unreached.
    assert said[0] == ("10.244.0.0/24", (("far", "10.244.2.0/24"),))

    said.clear()
    _run_until(shell(_Runner(fail="replace")), clock, lambda: said, "the failed apply said")
    # The route to n2 failed: nothing of ours is known in place, n2 is unreached too (the
    # twin on this machine needs no route).
    assert said[-1] == ("", (("far", "10.244.2.0/24"), ("n2", "10.244.1.0/24")))
