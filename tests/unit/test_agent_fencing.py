"""fence_decision(): when the agent stops its own pods."""

from __future__ import annotations

import pytest

from agent.fencing import FencePolicy, PeerView, fence_decision, peer_hears, witness_verdict

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


# -- witnesses: own view x peers' views (agent/fencing.py's table) ------------------------------


def views(silent: int, hearing: int, unreachable: int) -> list[PeerView]:
    return (
        [PeerView(f"s{i}", True, hears_master=False) for i in range(silent)]
        + [PeerView(f"h{i}", True, hears_master=True) for i in range(hearing)]
        + [PeerView(f"u{i}", False) for i in range(unreachable)]
    )


@pytest.mark.parametrize(
    ("size", "listed", "silent", "hearing", "unreachable", "verdict"),
    [
        (0, 0, 0, 0, 0, "fence"),  # the master never said: fence as before
        (1, 0, 0, 0, 0, "hold"),  # a single node never fences on a master stall
        (2, 1, 1, 0, 0, "hold"),  # both hear nothing: the master stalled
        (2, 1, 0, 1, 0, "fence"),  # the peer hears it: I am cut off
        # The cold witness connection: a freshly joined agent's question timed out during
        # a master pause. Unanswered is not "hears the master": ask again, fence at the
        # wait deadline if it stays so (cut off from everything).
        (2, 1, 0, 0, 1, "wait"),
        (3, 2, 0, 0, 2, "wait"),  # 0 peers answered
        (3, 2, 0, 1, 1, "wait"),  # the unanswered one decides
        (3, 2, 2, 0, 0, "hold"),
        (3, 2, 1, 1, 0, "hold"),  # 2 of 3 silent: a majority
        (3, 2, 1, 0, 1, "hold"),  # a dead peer, the other silent: still 2 of 3
        (3, 2, 0, 2, 0, "fence"),
        (4, 3, 1, 2, 0, "fence"),  # 2 of 4 is no majority
        (4, 3, 1, 1, 1, "wait"),  # 2 silent, 1 unknown, 1 hearing: could be 3 of 4
        (4, 3, 0, 2, 1, "fence"),  # even if the unknown were silent: 2 of 4
        (4, 3, 2, 1, 0, "hold"),
        (5, 4, 2, 0, 2, "hold"),  # cut in 3 + 2, the master with the 2: it stops evicting
        (5, 2, 2, 0, 0, "hold"),  # old agents without a witness count as hearing: 3 of 5
        (5, 2, 1, 1, 0, "fence"),
        (5, 2, 1, 0, 1, "wait"),  # if the unanswered one is silent: 3 of 5
        (100, 32, 20, 12, 0, "hold"),  # a sample: 21 of 33 silent
        (100, 32, 15, 17, 0, "fence"),
        (100, 32, 10, 5, 17, "wait"),  # a sample mostly unanswered: cannot tell yet
    ],
)
def test_the_witness_table(
    size: int, listed: int, silent: int, hearing: int, unreachable: int, verdict: str
) -> None:
    got, why = witness_verdict(size, listed, views(silent, hearing, unreachable))

    assert got == verdict, why


def test_a_peer_hears_the_master_only_with_a_session_and_a_fresh_ack() -> None:
    assert peer_hears(True, 0.05)
    assert not peer_hears(True, 1.4)
    assert not peer_hears(False, 0.05)
    assert not peer_hears(True, -1.0)
