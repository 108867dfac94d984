"""The chaos table's bookkeeping: outcomes land in the fault they followed; sums per kind."""

from __future__ import annotations

from tests.bench.chaos_report import FaultResult, Outcome, render, rows


def test_outcomes_belong_to_the_latest_fault_before_them() -> None:
    faults = [
        FaultResult("agent-kill9", at=10.0, converge_s=2.0, replaced=0, duplicates=0),
        FaultResult("master-kill9", at=20.0, converge_s=None, replaced=3, duplicates=1),
        FaultResult("agent-kill9", at=30.0, converge_s=4.0, replaced=1, duplicates=0),
    ]
    requests = [Outcome(5.0, True), Outcome(11.0, False), Outcome(21.0, False), Outcome(31.0, True)]
    writes = [Outcome(12.0, True), Outcome(22.0, False)]

    table = {r.kind: r for r in rows(faults, requests, writes)}

    assert (table["steady"].requests_failed, table["steady"].requests) == (0, 1)
    agent = table["agent-kill9"]
    assert (agent.faults, agent.requests_failed, agent.requests) == (2, 1, 2)
    assert (agent.writes_failed, agent.writes, agent.replaced) == (0, 1, 1)
    assert (agent.converge_median, agent.converge_worst, agent.not_converged) == (3.0, 4.0, 0)
    master = table["master-kill9"]
    assert (master.requests_failed, master.writes_failed, master.duplicates) == (1, 1, 1)
    assert master.converge_median is None and master.not_converged == 1


def test_the_table_names_lost_writes() -> None:
    faults = [FaultResult("disk-full", at=1.0, converge_s=1.5, replaced=0, duplicates=0)]

    text = render(rows(faults, [], [Outcome(2.0, True)]), acknowledged=1, lost=["w-7"])

    assert "disk-full" in text and "1.5 (1.5)" in text
    assert text.endswith("acknowledged writes lost: 1 of 1 (w-7)")
