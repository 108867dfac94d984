"""Peer-list changes reach the node sessions at most once a second (a join storm coalesced)."""

from __future__ import annotations

import pytest

from agent.fencing import PeerView, witness_verdict
from master.api.convert import peer_broadcast_news, peer_list_news, peers_to_proto
from master.api.node_servicer import peer_broadcast_wait
from protos import node_pb2


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


def _peers(count: int, size: int, first: int = 0) -> node_pb2.PeerList:
    rows = [(f"n{i:04d}", "10.0.0.1", 7401) for i in range(first, first + count + 1)]
    return peers_to_proto("self", rows, size, count)


@pytest.mark.parametrize(
    ("sent", "new", "news"),
    [
        (None, _peers(32, 100), True),  # nothing sent yet
        (_peers(32, 100), _peers(32, 100), False),  # the same list
        (_peers(32, 100), _peers(32, 5000), False),  # a larger cluster, same sample: no news
        (_peers(32, 100), _peers(32, 100, first=1), True),  # other peers
        (_peers(32, 100), _peers(32, 33), True),  # no longer larger than the list
        (_peers(5, 100), _peers(5, 101), True),  # too few listed: the size is the total
        (_peers(16, 18), _peers(16, 40), False),  # 16 listed, both sizes beyond 17
        (_peers(16, 17), _peers(16, 40), True),  # 17 was everyone: the total changes
    ],
)
def test_a_size_change_the_agent_ignores_is_not_sent(
    sent: node_pb2.PeerList | None, new: node_pb2.PeerList, news: bool
) -> None:
    assert peer_list_news(sent, new) is news


def test_a_skipped_size_change_never_changes_the_agents_verdict() -> None:
    views = [PeerView(f"n{i:04d}", reachable=True, hears_master=i % 3 == 0) for i in range(32)]
    for old, new in [(100, 5000), (18, 40), (34, 10_000)]:
        for listed in (16, 20, 32):
            sent, now = _peers(listed, old), _peers(listed, new)
            if not peer_list_news(sent, now):
                assert witness_verdict(old, listed, views[:listed]) == witness_verdict(
                    new, listed, views[:listed]
                )


def _rows(count: int, first: int = 0) -> list[tuple[str, str, int]]:
    return [(f"n{i:04d}", "10.0.0.1", 7401) for i in range(first, first + count)]


@pytest.mark.parametrize(
    ("told", "now", "news"),
    [
        (None, (_rows(33), 100), True),  # never broadcast
        ((_rows(33), 100), (_rows(33), 101), False),  # a node joined beyond the head
        ((_rows(33), 100), (_rows(33, first=1), 101), True),  # the head moved
        ((_rows(33), 33), (_rows(33), 34), True),  # the size still counts for some
        ((_rows(10), 10), (_rows(10), 11), True),  # a small cluster: every size counts
    ],
)
def test_a_broadcast_wakes_the_sessions_only_when_a_list_can_change(
    told: tuple[list[tuple[str, str, int]], int] | None,
    now: tuple[list[tuple[str, str, int]], int],
    news: bool,
) -> None:
    assert peer_broadcast_news(told, now, 32) is news


def test_no_broadcast_hides_news_from_any_session() -> None:
    for size_before, size_after in [(100, 101), (40, 5000)]:
        head = _rows(33)
        if peer_broadcast_news((head, size_before), (head, size_after), 32):
            continue
        for me in [name for name, _, _ in head] + ["n9999"]:
            sent = peers_to_proto(me, head, size_before, 32)
            assert not peer_list_news(sent, peers_to_proto(me, head, size_after, 32))
