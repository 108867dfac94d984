"""ping_cost's --ping-rtt reads each keepalive ping's round trip from gRPC's trace.

The lines are the server's http_keepalive trace as grpcio 1.85 writes them (absl log
format): a ping written to a peer, and that peer's ping answer handled. Each answer is
paired with the last ping to the same peer; answers with no ping are not counted, a ping
with no answer past the answer timeout is a lost session, and a trace across midnight
still gives a small positive time.
"""

from __future__ import annotations

import pytest

from tests.bench.ping_cost import ping_round_trips, rtt_summary

SENT = (
    "I1201 {t}    5441 writing.cc:144] SERVER[0x7fb61402b470]: Ping 8820390358090817931 "
    "sent [ipv4:127.0.0.1:{port}]: max_pings_without_data: 0, pings_before_data_required: 0"
)
ACKED = "I1201 {t}    5442 chttp2_transport.cc:3379] ipv4:127.0.0.1:{port}: Finish keepalive ping"
RESET = (
    "I1201 {t}    5442 chttp2_transport.cc:3423] ipv4:127.0.0.1:{port}: Keepalive ping "
    "cancelled. Resetting timer."
)


def test_each_answer_is_timed_from_the_last_ping_to_its_peer() -> None:
    lines = [
        SENT.format(t="15:41:33.900000", port=1),
        SENT.format(t="15:41:33.950000", port=2),
        RESET.format(t="15:41:33.960000", port=1),
        ACKED.format(t="15:41:34.000000", port=2),
        ACKED.format(t="15:41:35.400000", port=1),
        ACKED.format(t="15:41:35.500000", port=3),  # no ping to it in the trace
        SENT.format(t="15:41:36.000000", port=2),  # no answer before the end
    ]

    rtts, lost = ping_round_trips(lines, 2.5)

    assert rtts == pytest.approx([0.05, 1.5])
    assert lost == 0


def test_a_trace_across_midnight_gives_the_short_time() -> None:
    lines = [SENT.format(t="23:59:59.900000", port=1), ACKED.format(t="00:00:00.100000", port=1)]

    rtts, lost = ping_round_trips(lines, 2.5)

    assert rtts == pytest.approx([0.2])
    assert lost == 0


def test_a_ping_unanswered_past_the_timeout_is_counted_as_a_lost_session() -> None:
    lines = [
        SENT.format(t="10:00:00.000000", port=1),  # never answered: its session ended
        SENT.format(t="10:00:00.500000", port=2),
        ACKED.format(t="10:00:00.600000", port=2),
        SENT.format(t="10:00:02.000000", port=2),
        SENT.format(t="10:00:03.000000", port=2),  # the one before went unanswered
        SENT.format(t="10:00:04.000000", port=3),  # the trace ends before its timeout
    ]

    rtts, lost = ping_round_trips(lines, 1.5)

    assert rtts == pytest.approx([0.1])
    assert lost == 2


def test_the_summary_counts_the_pings_over_each_timeout() -> None:
    rtts = [0.001] * 997 + [0.3, 1.2, 2.0]

    summary = rtt_summary(rtts, 0)

    assert summary.startswith("1000 pings, p50 1.0 ms")
    assert "> 0.25 s: 3, > 0.5 s: 2, > 1 s: 2, > 1.5 s: 1, > 2.5 s: 0" in summary
    assert "max 2000.0" in summary
    assert summary.endswith("unanswered past the answer timeout: 0")
