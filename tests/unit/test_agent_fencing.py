"""fence_decision(): when the agent stops its own pods."""

from __future__ import annotations

from agent.fencing import FencePolicy, fence_decision

ON = FencePolicy()


def test_no_fence_within_the_default_of_eight_tenths_of_the_lease() -> None:
    assert fence_decision(ON, 10.0, since_ack=7.9, last_error_refused=False, tick_gap=0.2) is None


def test_fence_after_eight_tenths_of_the_lease_without_ack() -> None:
    verdict = fence_decision(ON, 10.0, since_ack=8.1, last_error_refused=False, tick_gap=0.2)

    assert verdict is not None and not verdict.frozen
    assert "8.1s" in verdict.reason


def test_connection_refused_means_the_master_is_down_so_no_fence() -> None:
    assert fence_decision(ON, 10.0, since_ack=60, last_error_refused=True, tick_gap=0.2) is None


def test_explicit_fence_after_wins_and_no_fence_disables() -> None:
    explicit = FencePolicy(fence_after=2.0)

    assert fence_decision(explicit, 10.0, 2.5, False, 0.2) is not None
    assert fence_decision(FencePolicy(enabled=False), 10.0, 99, False, 99) is None


def test_a_freeze_longer_than_the_lease_fences_at_once_even_if_refused() -> None:
    verdict = fence_decision(ON, 10.0, since_ack=0.0, last_error_refused=True, tick_gap=12.0)

    assert verdict is not None and verdict.frozen


def test_never_fences_before_knowing_a_lease_unless_told_when() -> None:
    assert fence_decision(ON, None, 999, False, 999) is None
    assert fence_decision(FencePolicy(fence_after=5), None, 6, False, 0.2) is not None
