"""The restart spans read back from an agent's log (tests/bench/recovery_spans.py)."""

from __future__ import annotations

from agent.restart_timeline import DeathSeen, RestartTimeline
from tests.bench.recovery_spans import read_restarts, span_table, spans


def test_the_agents_lines_give_each_restarts_spans() -> None:
    death = DeathSeen(100.005, 100.010, 100.020)
    first = RestartTimeline("ck-1", "web", "a" * 64, "in place", death, 100.030, 100.1, 100.130)
    second = RestartTimeline(
        "ck-2", "web", "b" * 64, "replaced (x y)", DeathSeen(), 200.0, 200.4, 200.5
    )
    engine = "engine restart-in-place id=aaaaaaaaaaaa start=0.050 inspect=0.010"
    log = "\n".join(
        [
            f"2026 INFO pinnace.agent.docker {engine} sent=100.040000 returned=100.090000",
            f"2026 INFO pinnace.agent {first.describe()}",
            "2026 INFO something else",
            f"2026 INFO pinnace.agent {second.describe()}",
            f"2026 INFO pinnace.agent {first.reported_line(100.140)}",
        ]
    )

    one, two = read_restarts(log)

    assert (one.pod, one.how, one.reported) == ("ck-1", "in place", 100.140)
    assert (two.how, two.reported, two.died_seen) == ("replaced (x y)", 0.0, 0.0)
    got = spans(100.0, one)
    assert {k: round(v, 3) for k, v in got.items()} == {
        "kill->die seen": 0.010,
        "kill->die (engine)": 0.005,
        "die->die seen": 0.005,
        "die seen->inspected": 0.010,
        "inspected->decided": 0.010,
        "decided->start sent": 0.010,
        "start sent->returned": 0.050,
        "returned->running": 0.040,
        "running->reported": 0.010,
        "die->StartedAt (engine)": 0.095,
    }
    # Spans whose ends were not logged are left out; without the fine points, the two
    # coarse spans an older agent's lines give.
    assert set(spans(199.0, two)) == {"decided->running"}
    table = span_table([got, spans(199.0, two)])
    assert "decided->running" in table and "start sent->returned" in table


def test_an_older_agents_line_gives_the_coarse_spans() -> None:
    old = (
        "restart-timeline pod=ck-1 container=web id=aaaaaaaaaaaa died_seen=100.010000"
        " decided=100.030000 running=100.130000 how=in place"
    )
    (one,) = read_restarts(old)
    got = spans(100.0, one)
    assert {k: round(v, 3) for k, v in got.items()} == {
        "kill->die seen": 0.010,
        "die seen->decided": 0.020,
        "decided->running": 0.100,
    }


def test_a_swap_into_the_standby_gives_the_engine_calls_spans() -> None:
    death = DeathSeen(100.005, 100.010, 100.010, by_event=True)
    swapped = RestartTimeline(
        "ck-1",
        "web",
        "c" * 64,
        "replaced (its pod's standby sandbox runs)",
        death,
        100.012,
        100.2,
        100.300,
    )
    marks = "began=100.020 create_sent=100.025 sent=100.100 returned=100.180"
    log = "\n".join(
        [
            "2026 INFO other: engine replace-into-standby id=bbbbbbbbbbbb old=x began=1 done=2",
            f"2026 INFO docker: engine replace-into-standby id=cccccccccccc old=aaaaaaaaaaaa"
            f" {marks} inspected=100.200 done=100.210",
            f"2026 INFO pinnace.agent {swapped.describe()}",
        ]
    )

    (one,) = read_restarts(log)

    got = spans(100.0, one)
    assert {k: round(v, 3) for k, v in got.items() if k != "die->StartedAt (engine)"} == {
        "kill->die seen": 0.010,
        "kill->die (engine)": 0.005,
        "die->die seen": 0.005,
        "die seen->inspected": 0.0,
        "inspected->decided": 0.002,
        "decided->create sent": 0.013,
        "create sent->start sent": 0.075,
        "start sent->returned": 0.080,
        "returned->swap done": 0.030,
        "swap done->running": 0.090,
    }
