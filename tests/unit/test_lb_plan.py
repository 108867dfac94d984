"""Planning HAProxy changes: endpoint churn becomes Runtime API commands, shape changes a reload.

Also the readers of HAProxy's answers the driver relies on to know a plan was carried out.
"""

from __future__ import annotations

import pytest

from master.lb.model import Endpoint, LbService, LbState
from master.lb.plan import plan_runtime
from master.lb.runtime import (
    HAProxyError,
    check_answer,
    parse_show_info_pid,
    parse_show_proc,
    parse_show_stat,
)

B = "be_web.http"


def ep(pod: str, port: int, *, ready: bool = True, draining: bool = False) -> Endpoint:
    return Endpoint(pod=pod, address="10.0.0.7", port=port, ready=ready, draining=draining)


def web(*endpoints: Endpoint, listen: int = 18080, port_name: str = "http") -> LbService:
    return LbService(name="web", port_name=port_name, listen_port=listen, endpoints=endpoints)


def state_for(*services: LbService, min_slots: int = 16) -> LbState:
    """The state HAProxy holds once `services` were applied (through a reload)."""
    plan = plan_runtime(LbState(), services, min_slots=min_slots)
    assert plan.needs_reload
    return plan.state


def test_first_service_needs_a_reload_and_gets_minimum_slots() -> None:
    plan = plan_runtime(LbState(), [web(ep("a", 1))])

    assert plan.needs_reload
    assert "added" in plan.reason
    assert plan.commands == ()
    (backend,) = plan.state.backends
    assert len(backend.slots) == 16
    assert backend.slots[0].pod == "a"


def test_nothing_changed_means_no_commands() -> None:
    current = state_for(web(ep("a", 1)))

    plan = plan_runtime(current, [web(ep("a", 1))])

    assert not plan.needs_reload
    assert plan.commands == ()
    assert plan.state == current


def test_added_endpoint_gets_address_then_ready_without_reload() -> None:
    current = state_for(web(ep("a", 1)))

    plan = plan_runtime(current, [web(ep("a", 1), ep("b", 2))])

    assert not plan.needs_reload
    assert plan.commands == (
        f"set server {B}/s1 addr 10.0.0.7 port 2",
        f"set server {B}/s1 health down",
        f"set server {B}/s1 state ready",
    )


def test_removed_endpoint_goes_to_maint_before_its_address_is_cleared() -> None:
    current = state_for(web(ep("a", 1), ep("b", 2)))

    plan = plan_runtime(current, [web(ep("b", 2))])

    assert not plan.needs_reload
    assert plan.commands == (
        f"set server {B}/s0 state maint",
        f"set server {B}/s0 addr 0.0.0.0 port 0",
    )
    assert plan.state.backends[0].slots[0].empty
    assert plan.state.backends[0].slots[1].pod == "b"


def test_draining_endpoint_is_drained_in_place_then_removed() -> None:
    current = state_for(web(ep("a", 1), ep("b", 2)))

    drain = plan_runtime(current, [web(ep("a", 1), ep("b", 2, draining=True))])
    gone = plan_runtime(drain.state, [web(ep("a", 1))])

    assert drain.commands == (f"set server {B}/s1 state drain",)
    assert gone.commands == (
        f"set server {B}/s1 state maint",
        f"set server {B}/s1 addr 0.0.0.0 port 0",
    )


def test_not_ready_endpoint_keeps_its_address_in_maint() -> None:
    current = state_for(web(ep("a", 1), ep("b", 2)))

    down = plan_runtime(current, [web(ep("a", 1), ep("b", 2, ready=False))])
    back = plan_runtime(down.state, [web(ep("a", 1), ep("b", 2))])

    assert down.commands == (f"set server {B}/s1 state maint",)
    assert back.commands == (
        f"set server {B}/s1 health down",
        f"set server {B}/s1 state ready",
    )


def test_new_not_ready_endpoint_gets_its_address_but_stays_in_maint() -> None:
    current = state_for(web(ep("a", 1)))

    plan = plan_runtime(current, [web(ep("a", 1), ep("b", 2, ready=False))])

    assert plan.commands == (f"set server {B}/s1 addr 10.0.0.7 port 2",)


def test_newcomer_prefers_a_never_used_slot_over_one_just_vacated() -> None:
    current = state_for(web(ep("a", 1), ep("b", 2)))

    plan = plan_runtime(current, [web(ep("b", 2), ep("c", 3))])

    assert plan.commands == (
        f"set server {B}/s0 state maint",
        f"set server {B}/s0 addr 0.0.0.0 port 0",
        f"set server {B}/s2 addr 10.0.0.7 port 3",
        f"set server {B}/s2 health down",
        f"set server {B}/s2 state ready",
    )


def test_full_backend_reuses_a_vacated_slot_taking_it_out_of_service_first() -> None:
    current = state_for(web(ep("a", 1), ep("b", 2)), min_slots=2)

    plan = plan_runtime(current, [web(ep("c", 3), ep("b", 2))], min_slots=2)

    assert not plan.needs_reload
    assert plan.commands == (
        f"set server {B}/s0 state maint",
        f"set server {B}/s0 addr 10.0.0.7 port 3",
        f"set server {B}/s0 health down",
        f"set server {B}/s0 state ready",
    )


def test_more_endpoints_than_slots_reloads_with_doubled_slots_keeping_assignment() -> None:
    first = [ep(f"p{i:02}", 1000 + i) for i in range(16)]
    current = state_for(web(*first))
    more = [ep("p16", 2000, draining=True), *reversed(first)]

    plan = plan_runtime(current, [web(*more)])

    assert plan.needs_reload
    assert "32 slots" in plan.reason
    slots = plan.state.backends[0].slots
    assert len(slots) == 32
    assert [s.pod for s in slots[:16]] == [e.pod for e in first]
    assert slots[16].pod == "p16"
    # The config carries addresses; drain is the one state re-applied after the reload.
    assert plan.commands == (f"set server {B}/s16 state drain",)


def test_backend_never_shrinks_while_it_lives() -> None:
    grown = state_for(web(*[ep(f"p{i:02}", 1000 + i) for i in range(17)]))

    plan = plan_runtime(grown, [web(ep("p00", 1000))])

    assert not plan.needs_reload
    assert len(plan.state.backends[0].slots) == 32


@pytest.mark.parametrize(
    ("desired", "reason"),
    [
        ([web(ep("a", 1)), web(listen=18081, port_name="admin")], "added: web/admin"),
        ([], "removed: web/http"),
        ([web(ep("a", 1), listen=18090)], "listen port 18090"),
    ],
)
def test_service_port_changes_need_a_reload(desired: list[LbService], reason: str) -> None:
    current = state_for(web(ep("a", 1)))

    plan = plan_runtime(current, desired)

    assert plan.needs_reload
    assert reason in plan.reason


def test_other_backends_keep_their_slots_when_a_service_is_added() -> None:
    current = state_for(web(ep("a", 1), ep("b", 2)))
    db = LbService(name="db", port_name="", listen_port=15432, endpoints=(ep("d", 5432),))

    plan = plan_runtime(current, [db, web(ep("b", 2), ep("a", 1))])

    assert plan.needs_reload
    assert plan.state.backend("web", "http") == current.backend("web", "http")
    assert plan.state.backend("db", "") is not None


def test_duplicate_endpoints_take_one_slot() -> None:
    plan = plan_runtime(LbState(), [web(ep("a", 1), ep("a", 1))])

    assert [s.pod for s in plan.state.backends[0].slots if not s.empty] == ["a"]


# -- reading HAProxy's answers (captured from HAProxy 2.6.12) ---------------------------------

SHOW_PROC = """\
#<PID>          <type>          <reloads>       <uptime>        <version>
12254           master          1 [failed: 0]   0d00h10m28s     2.6.12-1+deb12u4
# workers
5992            worker          0               0d00h00m00s     2.6.12-1+deb12u4
# old workers
12257           worker          1               0d00h10m28s     2.6.12-1+deb12u4
# programs

"""

SHOW_STAT = """\
# pxname,svname,qcur,status,check_status,type,addr
fe_web.http,FRONTEND,,OPEN,,0,
be_web.http,s0,0,UP,L4OK,2,127.0.0.1:43699
be_web.http,s1,0,MAINT,,2,0.0.0.0:0
be_web.http,BACKEND,0,UP,,1,

"""


def test_show_proc_gives_reload_count_and_current_and_old_workers() -> None:
    procs = parse_show_proc(SHOW_PROC)

    assert (procs.master_pid, procs.reloads, procs.failed_reloads) == (12254, 1, 0)
    assert procs.workers == (5992,)
    assert procs.old_workers == (12257,)


def test_show_proc_without_a_master_is_an_error() -> None:
    with pytest.raises(HAProxyError):
        parse_show_proc("Unknown command\n")


def test_show_stat_lists_servers_only() -> None:
    rows = parse_show_stat(SHOW_STAT)

    assert [(r.server, r.status, r.check_status, r.address) for r in rows] == [
        ("s0", "UP", "L4OK", "127.0.0.1:43699"),
        ("s1", "MAINT", "", "0.0.0.0:0"),
    ]


def test_show_info_pid() -> None:
    assert parse_show_info_pid("Name: HAProxy\nVersion: 2.6.12\nPid: 5992\n") == 5992


@pytest.mark.parametrize(
    ("command", "answer", "ok"),
    [
        ("set server b/s0 state ready", "\n", True),
        ("set server b/s0 state ready", "No such server.\n\n", False),
        (
            "set server b/s0 addr 127.0.0.1 port 1",
            "IP changed from '0.0.0.0' to '127.0.0.1', port changed from '0' to '1' by "
            "'stats socket command'\n",
            True,
        ),
        ("set server b/s0 addr 127.0.0.1 port 1", "no need to change the addr\n", True),
        ("set server b/s0 addr 127.0.0.1 port 1", "Require 'backend/server'.\n", False),
    ],
)
def test_check_answer_tells_success_from_refusal(command: str, answer: str, ok: bool) -> None:
    if ok:
        check_answer(command, answer)
    else:
        with pytest.raises(HAProxyError, match="refused"):
            check_answer(command, answer)
