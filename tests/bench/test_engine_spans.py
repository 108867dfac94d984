"""apply_to_running's spans: the engine's create/start events and the agent's log, parsed."""

from __future__ import annotations

import math
from datetime import datetime
from typing import Any

from tests.bench.engine_spans import (
    Spans,
    agent_told,
    format_spans,
    median_spans,
    spans_from_events,
)

ASK = 1_000_000.0


def event(action: str, at: float, pod: str = "web-1", kind: str = "container") -> dict[str, Any]:
    return {
        "Type": kind,
        "Action": action,
        "timeNano": round((ASK + at) * 1e9),
        "Actor": {"ID": "c", "Attributes": {"pinnace.pod": pod}},
    }


def test_spans_are_first_and_last_create_and_start_from_the_ask() -> None:
    events = [
        event("create", 0.070),
        event("create", 0.064),
        event("start", 0.829),
        event("start", 0.512),
        event("die", 2.0),
        event("create", 0.001, kind="network"),
    ]

    spans = spans_from_events(events, ASK)

    assert spans is not None
    assert [round(x, 3) for x in spans[:4]] == [0.064, 0.070, 0.512, 0.829]
    assert math.isnan(spans.told)


def test_spans_keep_only_the_trials_containers() -> None:
    events = [event("create", 0.05, pod="other-1"), event("create", 0.1), event("start", 0.6)]

    spans = spans_from_events(
        events, ASK, lambda attributes: str(attributes["pinnace.pod"]).startswith("web-")
    )

    assert spans is not None
    assert round(spans.first_create, 3) == 0.1


def test_no_spans_without_a_start() -> None:
    assert spans_from_events([event("create", 0.1)], ASK) is None


def test_the_agent_was_told_at_its_first_line_for_the_pods_after_the_ask() -> None:
    ask = datetime(2026, 12, 2, 4, 58, 29, 100000).timestamp()
    lines = [
        "2026-12-02 04:58:20,000 INFO pinnace.agent: PullImage pod=web-old container=web: x",
        "2026-12-02 04:58:29,000 INFO pinnace.agent: StopContainer pod=web-9 container=web: x",
        "2026-12-02 04:58:29,171 INFO pinnace.agent: assignments revision 14: 3 pods",
        "2026-12-02 04:58:29,172 INFO pinnace.agent: PullImage pod=web-abc container=web: x",
        "2026-12-02 04:58:29,175 INFO pinnace.agent: PullImage pod=web-def container=web: x",
    ]

    told = agent_told(lines, "web-", ask)

    assert round(told, 3) == 0.072
    assert math.isnan(agent_told(lines, "db-", ask))


def test_median_spans_and_their_line() -> None:
    trials = [Spans(0.1, 0.2, 0.5, 0.8, 0.06), Spans(0.3, 0.4, 0.7, 1.0), Spans(0.2, 0.3, 0.6, 0.9)]

    median = median_spans(trials)

    assert median == Spans(0.2, 0.3, 0.6, 0.9, 0.06)
    assert format_spans(median) == "agent told 0.060, creates 0.200-0.300, starts 0.600-0.900"
    assert format_spans(Spans(0.2, 0.3, 0.6, 0.9)) == "creates 0.200-0.300, starts 0.600-0.900"
    assert median_spans([]) is None
