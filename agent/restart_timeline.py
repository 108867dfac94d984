"""The spans of one restart of a crashed container, logged for the recovery bench (pure).

A crash -> running again is: the engine's `die` (its own time, from the event) -> the
event seen by the agent -> the died container inspected (the engine answers once it has
cleaned up after the exit; or, death=event, the event taken as enough: no inspect, that
span 0) -> the agent's decision (the sync, the back-off:
`RestartContainer` begins) -> the engine calls (started again in place, or replaced; the
runtime logs the start call's wall times, see ENGINE_START) -> the running state handed to
the session for the master. The worker logs two lines per restart, wall times in seconds
since the epoch so a bench can set them beside its own:
    restart-timeline pod=P container=C id=ID died_at=T died_seen=T inspected=T decided=T
        started_at=T running=T death=event|inspect how=...
    restart-reported id=ID reported=T
(started_at: the engine's StartedAt of the new run.) tests/bench/recovery_spans.py reads
them back and the recovery bench prints the spans.
"""

from __future__ import annotations

from dataclasses import dataclass

TIMELINE = "restart-timeline"
REPORTED = "restart-reported"
# The runtime's line for a start in place: `engine restart-in-place id=ID sent=T returned=T`.
ENGINE_START = "engine restart-in-place"
# The runtime's line for a replacement joined to its pod's standby holder:
# `engine replace-into-standby id=NEW old=OLD began=T create_sent=T sent=T returned=T
# inspected=T done=T` (wall times: the swap's thread began, the create sent, the start sent
# and returned, the inspect after it answered, the swap done: after-start hook included).
ENGINE_SWAP = "engine replace-into-standby"
SWAP_MARKS = ("began", "create_sent", "sent", "returned", "inspected", "done")


@dataclass(frozen=True, slots=True)
class DeathSeen:
    """A die event as the agent met it (wall times; 0.0 where not known)."""

    # The engine's time of the die.
    at: float = 0.0
    # When the event reached the agent's loop.
    seen: float = 0.0
    # When the death was decided on: the inspect of the died container answered, or (by_event)
    # the die event was taken as enough (agent/death_events.py).
    inspected: float = 0.0
    by_event: bool = False


@dataclass(frozen=True, slots=True)
class RestartTimeline:
    pod: str
    container: str
    container_id: str
    # "in place", or "replaced (why)".
    how: str
    # Wall times; the death's all 0.0 when no die event was seen (a relist found the exit).
    death: DeathSeen
    decided: float
    # The engine's StartedAt of the new run.
    started_at: float
    running: float

    def describe(self) -> str:
        d = self.death
        return (
            f"{TIMELINE} pod={self.pod} container={self.container} id={self.container_id[:12]}"
            f" died_at={d.at:.6f} died_seen={d.seen:.6f} inspected={d.inspected:.6f}"
            f" decided={self.decided:.6f} started_at={self.started_at:.6f}"
            f" running={self.running:.6f} death={'event' if d.by_event else 'inspect'}"
            f" how={self.how}"
        )

    def reported_line(self, at: float) -> str:
        return f"{REPORTED} id={self.container_id[:12]} reported={at:.6f}"
