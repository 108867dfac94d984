"""The node proxy without reloads: slots, Runtime API commands, refused listeners (pure)."""

from __future__ import annotations

from dataclasses import replace

import pytest

from agent.nodeproxy.listeners import BindFailure
from agent.nodeproxy.nodeaddresses import (
    NodePortAddresses,
    NodePortAddressesError,
    parse_nodeport_addresses,
)
from agent.nodeproxy.plan import plan_step
from agent.nodeproxy.process import parse_info_pid, parse_show_proc
from agent.nodeproxy.proxy import ListenerProblem, problems_for
from agent.nodeproxy.render import render_state
from agent.nodeproxy.slots import assign, desired_state, listeners
from agent.nodeproxy.table import Backend, ServicePort, ServiceTable, TableService

CIDR = "10.96.0.0/12"


def _web(*hosts: int, http: bool = False, port: int = 80) -> TableService:
    backends = tuple(Backend("192.0.2.1", h, f"web-{h}") for h in hosts)
    app = "http" if http else ""
    return TableService(
        name="web",
        namespace="shop",
        cluster_ip="10.96.0.10",
        ports=(ServicePort("", port, app_protocol=app, backends=backends),),
    )


DB = TableService(
    name="db",
    cluster_ip="10.96.0.11",
    ports=(ServicePort("pg", 5432, backends=(Backend("192.0.2.2", 31000, "db-0"),)),),
)


def _table(*services: TableService, version: int = 1) -> ServiceTable:
    return ServiceTable(version=version, services=services, service_cidr=CIDR)


def test_an_endpoint_keeps_its_slot_and_a_newcomer_takes_one_that_was_empty() -> None:
    a, b, c = ("192.0.2.1", 1), ("192.0.2.1", 2), ("192.0.2.1", 3)
    before = assign((), [a, b])

    after = assign(before, [b, c])

    assert before[:3] == (a, b, None)
    # a's slot (0) was vacated in this step: c takes slot 2, which was empty before.
    assert after[:3] == (None, b, c)
    assert len(after) == 8


def test_a_scale_within_the_slots_is_runtime_commands_not_a_reload() -> None:
    current = desired_state(_table(_web(30001, 30002), DB))

    step = plan_step(_table(_web(30002, 30003), DB, version=2), current, True, CIDR)

    assert (step.action, step.route) == ("runtime", "")
    assert step.commands == (
        "set server shop.web:80/s0 state maint",
        "set server shop.web:80/s2 addr 192.0.2.1 port 30003",
        "set server shop.web:80/s2 health down",
        "set server shop.web:80/s2 state ready",
    )
    # The config written beside it describes the same slots (for the next reload).
    assert "server s2 192.0.2.1:30003 check" in step.text
    assert "server s0 0.0.0.0:0 check disabled" in step.text


def test_an_endpoint_moving_to_another_address_passes_through_maint() -> None:
    current = desired_state(_table(_web(30001)))
    moved = replace(
        _web(),
        ports=(ServicePort("", 80, backends=(Backend("192.0.2.9", 30001, "web-x"),)),),
    )

    step = plan_step(_table(moved), current, True, CIDR)

    # A different endpoint: the old slot empties, a fresh one fills (never half-changed).
    assert step.commands == (
        "set server shop.web:80/s0 state maint",
        "set server shop.web:80/s1 addr 192.0.2.9 port 30001",
        "set server shop.web:80/s1 health down",
        "set server shop.web:80/s1 state ready",
    )


def test_a_new_service_a_growing_section_or_a_mode_change_reloads() -> None:
    current = desired_state(_table(_web(30001)))

    added = plan_step(_table(_web(30001), DB), current, True, CIDR)
    grown = plan_step(_table(_web(*range(30001, 30010))), current, True, CIDR)
    http = plan_step(_table(_web(30001, http=True)), current, True, CIDR)
    moved = plan_step(_table(_web(30001, port=8080)), current, True, CIDR)

    assert (added.action, added.reason) == ("reload", "sections added: default.db:pg")
    assert (grown.action, grown.reason) == ("reload", "shop.web:80 grows to 16 slots")
    assert (http.action, http.reason) == ("reload", "shop.web:80 moved or changed mode")
    assert moved.action == "reload"


def test_a_refused_listener_is_left_out_and_the_others_are_still_served() -> None:
    table = _table(_web(30001), DB)

    step = plan_step(table, None, False, "", refused={("10.96.0.10", 80)})

    assert "bind 10.96.0.10:80" not in step.text
    assert "bind 10.96.0.11:5432" in step.text
    assert [s.name for s in step.state.sections] == ["default.db:pg"]


def test_a_refused_listener_becomes_one_problem_naming_its_service_port_and_cause() -> None:
    wanted = listeners(_table(_web(30001), DB))
    failure = BindFailure(
        "10.96.0.10", 80, "PortInUse", "Address already in use; held by pid 7 (nginx)"
    )

    assert problems_for(wanted, [failure]) == (
        ListenerProblem(
            "shop",
            "web",
            "80",
            "PortInUse",
            "the node proxy cannot listen on 10.96.0.10:80 (Address already in use; held by "
            "pid 7 (nginx)); this cluster IP port does not answer on this node until the "
            "port is free there",
        ),
    )
    assert wanted[("10.96.0.11", 5432)] == ("default", "db", "pg")


SHOW_PROC = """#<PID>          <type>          <reloads>       <uptime>        <version>
32670           master          2 [failed: 1]   0d00h00m17s     2.6.12-1+deb12u4
# workers
493             worker          1               0d00h00m12s     2.6.12-1+deb12u4
# old workers
400             worker          0               0d00h00m17s     2.6.12-1+deb12u4
# programs

"""


def test_show_proc_gives_reloads_failures_and_current_workers_only() -> None:
    procs = parse_show_proc(SHOW_PROC)

    assert (procs.reloads, procs.failed, procs.workers) == (2, 1, (493,))
    assert parse_info_pid("Name: HAProxy\nVersion: 2.6.12\nPid: 493\n") == 493


def _node_port_web(node_port: int = 31234) -> TableService:
    backends = (Backend("192.0.2.1", 30001, "web-1"),)
    udp = ServicePort("dns", 53, "UDP", backends=backends, node_port=31053)
    return TableService(
        name="web",
        namespace="shop",
        type="NodePort",
        cluster_ip="10.96.0.10",
        ports=(ServicePort("http", 80, backends=backends, node_port=node_port), udp),
    )


NODE = NodePortAddresses("192.0.2.50")


def test_a_node_port_listens_on_every_node_address_with_the_same_endpoints() -> None:
    table = _table(_node_port_web())

    state = desired_state(table, node=NODE)

    assert [(s.name, s.binds) for s in state.sections] == [
        ("shop.web:http", (("10.96.0.10", 80),)),
        ("shop.web:http:node31234", (("192.0.2.50", 31234), ("0.0.0.0", 31234))),
    ]  # the UDP port is the kernel's (agent/nodeproxy/udprules.py), not HAProxy's
    assert state.sections[0].slots == state.sections[1].slots
    assert listeners(table, NODE)[("0.0.0.0", 31234)] == ("shop", "web", "http (node port 31234)")
    # Without the node's address (an agent that gives none) only the cluster IP is served.
    assert len(desired_state(table).sections) == 1


def test_a_node_port_section_keeps_out_loopback_unless_the_ranges_name_it() -> None:
    table = _table(_node_port_web())
    v6 = NodePortAddresses("192.0.2.50", ipv6=True)
    ranged = NodePortAddresses("127.0.0.2", ("192.0.2.0/24", "127.0.0.0/8"))

    text = render_state(desired_state(table, node=v6), 1, "10.96.0.0/12")
    other = render_state(desired_state(table, node=ranged), 1, "10.96.0.0/12")

    assert (
        "listen shop.web:http:node31234\n"
        "    bind 192.0.2.50:31234\n"
        "    bind 0.0.0.0:31234\n"
        "    bind [::]:31234 v6only\n"
        "    tcp-request connection reject if { dst 127.0.0.0/8 ::1 } !{ dst 192.0.2.50 }\n"
    ) in text
    assert (
        "    tcp-request connection reject unless { dst 192.0.2.0/24 127.0.0.0/8 127.0.0.2 }\n"
    ) in other
    # The cluster IP's section has neither.
    assert "listen shop.web:http\n    bind 10.96.0.10:80\n    balance" in text


def test_changed_node_port_ranges_reload_the_proxy() -> None:
    table = _table(_node_port_web())
    state = desired_state(table, node=NODE)

    step = plan_step(
        table, state, True, "10.96.0.0/12", node=NodePortAddresses("192.0.2.50", ("192.0.2.0/24",))
    )

    assert step.action == "reload" and "moved or changed mode" in step.reason


def test_a_node_port_held_by_another_process_leaves_the_cluster_ip_served_and_says_so() -> None:
    table = _table(_node_port_web())
    wanted = listeners(table, NODE)
    failures = [
        BindFailure("0.0.0.0", 31234, "PortInUse", "Address already in use"),
        BindFailure("192.0.2.50", 31234, "PortInUse", "Address already in use"),
    ]

    state = desired_state(table, refused={f.listener for f in failures}, node=NODE)
    (problem,) = problems_for(wanted, failures)

    assert [s.name for s in state.sections] == ["shop.web:http"]
    assert problem.port == "http (node port 31234)"
    assert problem.message == (
        "the node proxy cannot listen on 192.0.2.50:31234 and 0.0.0.0:31234 (Address already "
        "in use); this node port does not answer on this node until the port is free there"
    )


def test_a_node_port_whose_wildcard_alone_is_held_still_answers_on_the_advertise_address() -> None:
    table = _table(_node_port_web())

    state = desired_state(table, refused={("0.0.0.0", 31234)}, node=NODE)

    assert state.sections[1].binds == (("192.0.2.50", 31234),)


@pytest.mark.parametrize(
    ("text", "ranges"),
    [
        ("", ()),
        ("192.0.2.7/24, 127.0.0.0/8", ("192.0.2.0/24", "127.0.0.0/8")),
        ("fd00::/64", ("fd00::/64",)),
    ],
)
def test_nodeport_addresses_parse(text: str, ranges: tuple[str, ...]) -> None:
    assert parse_nodeport_addresses(text) == ranges


def test_bad_nodeport_addresses_are_one_sentence_naming_the_flag() -> None:
    with pytest.raises(NodePortAddressesError) as err:
        parse_nodeport_addresses("192.0.2.0/24,lan")

    assert str(err.value) == (
        "--nodeport-addresses: 'lan' is not an address range; give ranges such as "
        "192.0.2.0/24,127.0.0.0/8, or leave the flag out for every address but loopback"
    )
