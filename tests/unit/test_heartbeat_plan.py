"""Heartbeats stretched as the cluster grows, leases stretched with them (Nomad's rule)."""

from __future__ import annotations

import pytest

from master.controllers.heartbeats import heartbeat_plan


@pytest.mark.parametrize(
    ("nodes", "max_rate", "interval", "lease"),
    [
        (0, 2500, 1.0, 3.0),
        (1, 2500, 1.0, 3.0),
        (1000, 2500, 1.0, 3.0),
        (2500, 2500, 1.0, 3.0),  # exactly at the cap: unchanged
        (3000, 2500, 1.2, 3.2),
        (5000, 2500, 2.0, 4.0),
        (10000, 2500, 4.0, 6.0),
        (500, 500, 1.0, 3.0),  # the default cap: a dead node is found by its stream
        (1000, 500, 2.0, 4.0),
        (5000, 500, 10.0, 12.0),
        (5000, 50, 100.0, 102.0),  # Nomad's 50/s: a hung agent found after 102 s
        (5000, 0, 1.0, 3.0),  # 0 turns stretching off
    ],
)
def test_interval_and_lease(nodes: int, max_rate: float, interval: float, lease: float) -> None:
    plan = heartbeat_plan(nodes, 1.0, 3.0, max_rate)

    assert plan.interval == pytest.approx(interval)
    assert plan.lease == pytest.approx(lease)


@pytest.mark.parametrize("nodes", [1, 10, 100, 1000, 5000, 20000])
def test_total_rate_stays_under_the_cap_and_the_slack_is_kept(nodes: int) -> None:
    plan = heartbeat_plan(nodes, 1.0, 3.0, 2500)

    assert nodes / plan.interval <= 2500 + 1e-9
    assert plan.lease - plan.interval == pytest.approx(2.0)


def test_longer_configured_settings_are_kept() -> None:
    plan = heartbeat_plan(5000, 1.0, 6.0, 2500)  # --leader-elect's 6 s floor

    assert (plan.interval, plan.lease) == (2.0, 7.0)
