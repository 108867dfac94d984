"""Where one apply_to_running trial's time went, from the engine's events and the agent's log.

The table's figure (the ask -> the last container's StartedAt) says how long, not where:
whether a system was late to ask the engine (the CLI, the master, the agent) or the engine
took longer over the same work. Each trial is read once more after its clock stopped, from
facts both systems leave alike: the engine's own `create` and `start` events of the trial's
containers (the Events API, kept by the engine, nanosecond times), in seconds from the ask.
For pinnace the agent's log adds when the agent had the pods (its first action line for
them). Parsing is pure (tested with plain dicts and lines); `read_spans` is the one engine
call, made before the trial's teardown.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any, NamedTuple

import docker


class Spans(NamedTuple):
    """Seconds from the ask to the engine's first and last create and start of a trial's
    containers (`told`: when pinnace's agent had the pods, NaN when not known)."""

    first_create: float
    last_create: float
    first_start: float
    last_start: float
    told: float = float("nan")


def event_time(event: Mapping[str, Any]) -> float:
    """An engine event's time in seconds since the epoch (timeNano, else time)."""
    nano = event.get("timeNano")
    if nano:
        return int(nano) / 1e9
    return float(event.get("time") or 0)


def spans_from_events(
    events: Iterable[Mapping[str, Any]],
    ask_wall: float,
    keep: Callable[[Mapping[str, Any]], bool] = lambda attributes: True,
) -> Spans | None:
    """The create and start spans of the container events that `keep` (given an event's
    Actor.Attributes: its labels and name) accepts; None without both a create and a start."""
    creates: list[float] = []
    starts: list[float] = []
    for event in events:
        if event.get("Type") != "container":
            continue
        attributes = (event.get("Actor") or {}).get("Attributes") or {}
        if not keep(attributes):
            continue
        action = event.get("Action") or event.get("status")
        if action == "create":
            creates.append(event_time(event) - ask_wall)
        elif action == "start":
            starts.append(event_time(event) - ask_wall)
    if not creates or not starts:
        return None
    return Spans(min(creates), max(creates), min(starts), max(starts))


def log_time(line: str) -> float | None:
    """The time of a pinnace log line ("2026-12-02 04:58:29,172 INFO ...", local time)."""
    try:
        return datetime.strptime(line[:23], "%Y-%m-%d %H:%M:%S,%f").timestamp()
    except ValueError:
        return None


def agent_told(log_lines: Sequence[str], pod_prefix: str, ask_wall: float) -> float:
    """Seconds from the ask to the agent's first action line for a pod named `pod_prefix`...
    (it logs each action the moment it has it); NaN when there is none after the ask."""
    needle = f" pod={pod_prefix}"
    for line in log_lines:
        if needle not in line:
            continue
        at = log_time(line)
        # Log times are to the millisecond: a line in the ask's own millisecond is kept.
        if at is not None and at >= ask_wall - 0.001:
            return at - ask_wall
    return float("nan")


def read_spans(
    client: docker.DockerClient,
    ask_wall: float,
    label: str,
    keep: Callable[[Mapping[str, Any]], bool] = lambda attributes: True,
) -> Spans | None:
    """The engine's events of containers carrying `label` since the ask (one API call; the
    engine keeps its recent events, so this is read after the trial's clock stopped)."""
    stream = client.events(  # type: ignore[call-overload]
        since=f"{ask_wall - 0.001:.9f}",
        until=f"{time.time():.9f}",
        filters={"type": "container", "label": label},
        decode=True,
    )
    return spans_from_events(list(stream), ask_wall, keep)


def format_spans(spans: Spans | None) -> str:
    """`told 0.061, creates 0.064-0.070, starts 0.512-0.829` (seconds from the ask)."""
    if spans is None:
        return "no create/start events"
    head = "" if spans.told != spans.told else f"agent told {spans.told:.3f}, "
    return (
        f"{head}creates {spans.first_create:.3f}-{spans.last_create:.3f}, "
        f"starts {spans.first_start:.3f}-{spans.last_start:.3f}"
    )


def median_spans(trials: Sequence[Spans]) -> Spans | None:
    """Each span's median over the trials (NaN `told` left out); None without trials."""
    if not trials:
        return None
    told = [t.told for t in trials if t.told == t.told]
    return Spans(
        statistics.median(t.first_create for t in trials),
        statistics.median(t.last_create for t in trials),
        statistics.median(t.first_start for t in trials),
        statistics.median(t.last_start for t in trials),
        statistics.median(told) if told else float("nan"),
    )
