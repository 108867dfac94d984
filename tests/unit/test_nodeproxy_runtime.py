"""The node proxy without reloads: slots, Runtime API commands, refused listeners (pure)."""

from __future__ import annotations

from dataclasses import replace

from agent.nodeproxy.listeners import BindFailure
from agent.nodeproxy.plan import plan_step
from agent.nodeproxy.process import parse_info_pid, parse_show_proc
from agent.nodeproxy.proxy import ListenerProblem, problems_for
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
