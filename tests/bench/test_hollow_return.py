"""The hollow bench's judgement of the fleet's return to the cluster's heartbeat plan.

After an apply's burst the master's budget is cut and agents run stretched plans (up to
40 s); the bench times from all Running until every live agent runs the plan the master
makes for the cluster at its full budget, read from the fleets' status lines.
"""

from __future__ import annotations

from collections import Counter

from tests.bench.hollow import Return, cluster_interval, on_plan, peak_rate


def test_the_cluster_plan_follows_the_master_flags_the_bench_passes() -> None:
    assert cluster_interval(5000, ()) == 20.0
    assert cluster_interval(100, ()) == 1.0
    assert cluster_interval(5000, ("--max-heartbeats-per-second", "500")) == 10.0
    assert cluster_interval(10, ("--heartbeat-interval=4", "--log-level", "INFO")) == 4.0


def test_the_fleet_is_back_only_when_every_live_agent_runs_that_plan() -> None:
    assert on_plan(Counter({"20": 5000}), 20.0)
    assert not on_plan(Counter({"20": 4999, "40": 1}), 20.0)
    assert not on_plan(Counter({"21.5": 5000}), 20.0)
    assert not on_plan(Counter(), 20.0)  # no status line yet says anything
    assert on_plan(Counter({"20": 4000, "40": 0}), 20.0)
    assert on_plan(Counter({"20": 4516, "21": 484}), 20.0, 0.9)
    assert not on_plan(Counter({"20": 4400, "21": 600}), 20.0, 0.9)


def test_the_peak_rate_is_the_steepest_rise_over_any_five_seconds() -> None:
    # 100 a second, then 300 a second for 5 s, then 100 again; sampled every second.
    samples, count = [], 0.0
    for t in range(30):
        samples.append((float(t), count))
        count += 300.0 if 10 <= t < 15 else 100.0
    assert peak_rate(samples) == 300.0
    assert peak_rate(samples[:3]) != peak_rate(samples[:3])  # too few: nan


def test_the_fleet_is_back_only_once_it_stays_on_the_plan() -> None:
    """On the plan at all Running, then stretched by a cut after it: back when it returns,
    and only once it has held there longer than the longest plan."""
    back = Return()
    back.look(0.0, Counter({"20": 5000}), 20.0)
    back.look(5.0, Counter({"20": 2000, "40": 3000}), 20.0)
    back.look(50.0, Counter({"20": 4600, "40": 400}), 20.0)
    back.look(60.0, Counter({"20": 5000}), 20.0)
    assert not back.held(100.0)
    assert back.held(105.0)
    assert (back.all_since, back.most_since) == (60.0, 50.0)
