"""`get masters` rendering (master/ha/masters.py) and its table row, and how an agent
that knows several masters picks the next one: pure, no etcd."""

from __future__ import annotations

from agent.join import AgentSecurity
from master.api.tables import header_for, rows_for
from master.cli.kinds import resolve_kind
from master.ha.elector import MasterInfo
from master.ha.masters import render_masters


def test_masters_are_sorted_and_only_the_leader_leads() -> None:
    masters = [MasterInfo("m2", "10.0.0.3:7400", 0.0), MasterInfo("m1", "10.0.0.2:7400", 0.0)]

    docs = render_masters(masters, leader="m2")

    assert [d["metadata"]["name"] for d in docs] == ["m1", "m2"]
    assert [d["spec"]["address"] for d in docs] == ["10.0.0.2:7400", "10.0.0.3:7400"]
    assert [d["status"]["leader"] for d in docs] == [False, True]
    assert docs[0]["kind"] == "Master"


def test_with_no_leader_every_master_is_a_follower() -> None:
    docs = render_masters([MasterInfo("m1", "a:1", 0.0)], leader=None)

    assert docs[0]["status"] == {"leader": False, "role": "follower"}


def test_the_table_shows_name_address_role_and_age() -> None:
    docs = render_masters([MasterInfo("m1", "10.0.0.2:7400", 1000.0)], leader="m1")

    assert header_for("Master", wide=False) == ["NAME", "ADDRESS", "ROLE", "AGE"]
    assert rows_for("Master", docs, wide=False, now=1090.0) == [
        ["m1", "10.0.0.2:7400", "leader", "90s"]
    ]


def test_masters_is_a_kind_the_cli_knows() -> None:
    assert resolve_kind("masters") == resolve_kind("master") == "Master"


def test_master_info_round_trips_and_rejects_garbage() -> None:
    info = MasterInfo("m1", "10.0.0.2:7400", 12.5)

    assert MasterInfo.decode(info.encode()) == info
    assert MasterInfo.decode(b"not json") is None
    assert MasterInfo.decode(b'{"name": "x"}') is None


def test_an_agent_goes_where_a_follower_points_and_otherwise_round_the_list() -> None:
    security = AgentSecurity("a:1,b:2,c:3", "node-1", None, None)

    targets = [security.next_target() for _ in range(4)]
    security.prefer("c:3")
    after_hint = security.next_target()
    security.prefer("elsewhere:9")  # not one of ours: ignored

    assert targets == ["a:1", "b:2", "c:3", "a:1"]
    assert after_hint == "c:3"
    assert security.master == "c:3"
    assert security.next_target() == "a:1"
