"""Peer-list changes reach the node sessions at most once a second (a join storm coalesced)."""

from __future__ import annotations

import pytest

from master.api.node_servicer import peer_broadcast_wait


@pytest.mark.parametrize(
    ("last", "now", "wait"),
    [
        (float("-inf"), 100.0, 0.0),  # never broadcast: at once
        (99.0, 100.0, 0.0),  # a second ago: at once
        (99.5, 100.0, 0.5),  # half a second ago: the rest of the second
        (100.0, 100.0, 1.0),  # just now: a full interval
    ],
)
def test_wait_until_a_second_after_the_last_broadcast(last: float, now: float, wait: float) -> None:
    assert peer_broadcast_wait(last, now) == pytest.approx(wait)
