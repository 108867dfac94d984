"""The spans of each container restart, read back from an agent's log (pure).

agent/restart_timeline.py says what the agent logs; this turns those lines (and the
runtime's ENGINE_START line of a start in place), beside the bench's own kill wall time,
into the spans of one crash -> running (and kill->die seen, the sum of the first two):
- kill->die (engine): `docker kill` to the engine's own time of the die event;
- die->die seen: the event's way to the agent's loop (the event stream, a thread hop);
- die seen->inspected: the inspect of the died container (the engine answers it once it
  has cleaned up after the exit: unmounted, network released); 0 for a death decided
  from its event (`death=event`, agent/death_events.py): the start is sent at once and
  waits for that cleanup inside the engine, in start sent->returned;
- inspected->decided: the agent's decision and its pod task getting to run;
- decided->start sent: the container's config and the hop to the runtime's thread;
- start sent->returned: the engine's `start` (an exited container started again);
- returned->running: the inspect after the start and the hop back;
a replacement joined to its pod's standby (the runtime's ENGINE_SWAP line) instead has:
- decided->create sent: the config, the hop to the runtime's thread, the mounts;
- create sent->start sent: the engine's `create` of the replacement;
- start sent->returned: the engine's `start` of it;
- returned->swap done: the inspect after the start and the after-start hook;
- swap done->running: the dead run's log kept, its removal, the hop back;
- running->reported: handed to the session for the master.
Beside them, not part of the chain: die->StartedAt (engine), from the engine's die to the
new run's StartedAt, both the engine's own times: what the engine floor's restart policy
row "StartedAt - FinishedAt" measures of an in-daemon restart.
A restart that was replaced, or logged by an older agent, has only the spans whose ends
it logged.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, replace

from agent.restart_timeline import ENGINE_START, ENGINE_SWAP, REPORTED, SWAP_MARKS, TIMELINE
from tests.bench.recovery_report import percentile

_FIELD = re.compile(r"(\w+)=(\S+)")
SPANS = (
    "kill->die seen",
    "kill->die (engine)",
    "die->die seen",
    "die seen->inspected",
    "inspected->decided",
    "decided->start sent",
    "start sent->returned",
    "returned->running",
    "decided->create sent",
    "create sent->start sent",
    "returned->swap done",
    "swap done->running",
    "running->reported",
    # Older agents log no inspected / start times: their two spans instead.
    "die seen->decided",
    "decided->running",
    "die->StartedAt (engine)",
)


@dataclass(frozen=True, slots=True)
class LoggedRestart:
    """One restart as the agent logged it (wall times; 0.0 where not logged)."""

    pod: str
    container_id: str
    how: str
    died_seen: float
    decided: float
    running: float
    reported: float = 0.0
    started_at: float = 0.0
    died_at: float = 0.0
    inspected: float = 0.0
    start_sent: float = 0.0
    start_returned: float = 0.0
    # A swap into the standby (ENGINE_SWAP): the create sent, the swap done (0.0: none).
    create_sent: float = 0.0
    swap_done: float = 0.0


def _f(fields: dict[str, str], name: str) -> float:
    return float(fields.get(name, 0))


def read_restarts(log_text: str) -> list[LoggedRestart]:
    """The restarts an agent's log tells of, in order; each `reported` is the first report
    line for its container after its timeline line, each start's times the runtime's last
    ENGINE_START line for its container before it."""
    found: list[LoggedRestart] = []
    open_by_id: dict[str, int] = {}
    starts: dict[str, tuple[float, float]] = {}
    swaps: dict[str, dict[str, float]] = {}
    for line in log_text.splitlines():
        if ENGINE_SWAP in line:
            fields = dict(_FIELD.findall(line[line.index(ENGINE_SWAP) :]))
            swaps[fields.get("id", "")] = {k: _f(fields, k) for k in SWAP_MARKS}
        elif ENGINE_START in line:
            fields = dict(_FIELD.findall(line[line.index(ENGINE_START) :]))
            starts[fields.get("id", "")] = (_f(fields, "sent"), _f(fields, "returned"))
        elif TIMELINE in line:
            head, _, how = line[line.index(TIMELINE) :].partition(" how=")
            fields = dict(_FIELD.findall(head))
            cid = fields.get("id", "")
            sent, returned = starts.pop(cid, (0.0, 0.0)) if how == "in place" else (0.0, 0.0)
            swap = swaps.pop(cid, {}) if how != "in place" else {}
            if swap:
                sent, returned = swap["sent"], swap["returned"]
            open_by_id[cid] = len(found)
            found.append(
                LoggedRestart(
                    fields.get("pod", ""),
                    cid,
                    how,
                    _f(fields, "died_seen"),
                    _f(fields, "decided"),
                    _f(fields, "running"),
                    died_at=_f(fields, "died_at"),
                    inspected=_f(fields, "inspected"),
                    start_sent=sent,
                    start_returned=returned,
                    started_at=_f(fields, "started_at"),
                    create_sent=swap.get("create_sent", 0.0),
                    swap_done=swap.get("done", 0.0),
                )
            )
        elif REPORTED in line:
            fields = dict(_FIELD.findall(line[line.index(REPORTED) :]))
            index = open_by_id.pop(fields.get("id", ""), None)
            if index is not None:
                found[index] = replace(found[index], reported=_f(fields, "reported"))
    return found


def spans(killed: float, r: LoggedRestart) -> dict[str, float]:
    """The spans of one restart, in seconds (a span missing its ends is left out)."""
    fine = r.inspected > 0 and r.start_sent > 0
    points = [
        ("kill->die seen", killed, r.died_seen),
        ("kill->die (engine)", killed, r.died_at),
        ("die->die seen", r.died_at, r.died_seen),
        ("running->reported", r.running, r.reported),
        ("die->StartedAt (engine)", r.died_at, r.started_at),
    ]
    if fine:
        points += [
            ("die seen->inspected", r.died_seen, r.inspected),
            ("inspected->decided", r.inspected, r.decided),
        ]
    if fine and r.create_sent > 0:
        points += [
            ("decided->create sent", r.decided, r.create_sent),
            ("create sent->start sent", r.create_sent, r.start_sent),
            ("start sent->returned", r.start_sent, r.start_returned),
            ("returned->swap done", r.start_returned, r.swap_done),
            ("swap done->running", r.swap_done, r.running),
        ]
    elif fine:
        points += [
            ("decided->start sent", r.decided, r.start_sent),
            ("start sent->returned", r.start_sent, r.start_returned),
            ("returned->running", r.start_returned, r.running),
        ]
    else:
        points += [
            ("die seen->decided", r.died_seen, r.decided),
            ("decided->running", r.decided, r.running),
        ]
    return {name: end - start for name, start, end in points if start > 0 and end > 0}


def span_table(rows: Sequence[dict[str, float]]) -> str:
    """p50 / p99 / max of each span over the trials, one line each."""
    lines = [f"{'span':<24} {'n':>3} {'p50 s':>7} {'p99 s':>7} {'max s':>7}"]
    for name in SPANS:
        values = sorted(r[name] for r in rows if name in r)
        if not values:
            continue
        lines.append(
            f"{name:<24} {len(values):>3} {percentile(values, 50):>7.3f}"
            f" {percentile(values, 99):>7.3f}"
            f" {values[-1]:>7.3f}"
        )
    return "\n".join(lines)
