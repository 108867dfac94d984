"""agent/notices.py: which notices go again, by fake monotonic times."""

from __future__ import annotations

from agent.notices import NoticeLog
from agent.state.events import SendNotice


def test_notices_sent_within_the_window_go_again_oldest_first() -> None:
    log = NoticeLog(keep_s=600.0, kept=32)
    log.sent(SendNotice("MasterUnreachable", "silent 3.0s"), now=100.0)
    log.sent(SendNotice("AgentLoopStalled", "stalled 2.0s"), now=400.0)

    assert [n.reason for n in log.again(now=650.0)] == ["MasterUnreachable", "AgentLoopStalled"]
    # 600 s after the first went it is still kept; past that it is not.
    assert [n.reason for n in log.again(now=700.0)] == ["MasterUnreachable", "AgentLoopStalled"]
    assert [n.reason for n in log.again(now=700.5)] == ["AgentLoopStalled"]
    assert log.again(now=1000.5) == []


def test_asking_again_keeps_them_for_the_next_ask() -> None:
    # A second reload may drop what the first resend restored, before it was stored.
    log = NoticeLog(keep_s=600.0, kept=32)
    log.sent(SendNotice("MasterUnreachable", "silent 3.0s"), now=0.0)

    assert len(log.again(now=1.0)) == 1
    assert len(log.again(now=2.0)) == 1


def test_only_the_newest_are_kept() -> None:
    log = NoticeLog(keep_s=600.0, kept=3)
    for i in range(5):
        log.sent(SendNotice("PodBridge", f"try {i}"), now=float(i))

    assert [n.message for n in log.again(now=5.0)] == ["try 2", "try 3", "try 4"]
