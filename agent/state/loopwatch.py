"""Whether the agent's event loop is wedged, as a thread beside it sees it (pure).

A hung agent (its asyncio loop stuck: a blocking call on the loop, a lock it waits for
forever, a callback that never returns) stops heartbeating, but its gRPC core keeps the
connection and answers the master's keepalive pings, so the master could only find it
by its heartbeat lease, which stretches with the cluster (22 s at 5,000 nodes,
master/controllers/heartbeats.py). A beat on the session cheap enough to send every
second or two still cost the master ~0.25 ms of CPU each (tests/bench/liveness_cost.py):
at 5,000 nodes more than the master's whole 0.5-core budget. So the agent watches its
own loop instead (agent/watchdog.py): the loop stamps a tick every `period`, a thread
looks every `period`, and once the loop has missed `wedged_after` seconds of ticks the
thread ends the agent's connections to the master. The master sees the stream end, as
when the agent dies, and the node is NotReady a session grace later (about 4 s after
the wedge in all); once the loop runs again the agent registers again and is Ready.

A starved agent must not be taken for a hung one: on a machine at load 30 the loop may
not run for seconds though nothing is wrong with it. The watcher is starved with it (it
needs the CPU and the GIL the loop holds between its 5 ms switches), so the silence is
counted only over the time the watcher itself looked steadily, each look within
`max_gap` of the one before: a watcher that woke late starts counting again. One
verdict per wedge: the next is given only after the loop has ticked again; when it
does, `Recovered` says for how long it was stuck.

What it cannot see: a wedge that holds the GIL (a C call that never lets go) stops the
watcher too; the heartbeat lease still finds that one, and the master's pings a frozen
process (SIGSTOP) or a cut link.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class LoopWatchSettings:
    # The loop's silence, while the watcher looks steadily, that makes it wedged.
    wedged_after: float = 2.5
    # How often the loop ticks and the watcher looks.
    period: float = 0.25
    # A look later than this after the previous one: the watcher was starved as well.
    max_gap: float = 1.0


@dataclass(frozen=True, slots=True)
class LoopWatch:
    # The watcher's last look, and since when its looks have come steadily.
    looked_at: float
    steady_since: float
    # The loop's tick a Wedged verdict was given for (None: the loop is not wedged).
    wedged_tick: float | None = None


@dataclass(frozen=True, slots=True)
class Wedged:
    """The loop has not run for `silent_for` seconds while the watcher looked steadily."""

    silent_for: float


@dataclass(frozen=True, slots=True)
class Recovered:
    """The loop runs again after a Wedged verdict; it had not run for `stalled_for`."""

    stalled_for: float


Verdict = Wedged | Recovered | None


def start_watch(now: float) -> LoopWatch:
    return LoopWatch(looked_at=now, steady_since=now)


def look(
    watch: LoopWatch, now: float, loop_tick: float, settings: LoopWatchSettings
) -> tuple[LoopWatch, Verdict]:
    """The watcher looks at `now`; the loop last ticked at `loop_tick` (same clock)."""
    steady_since = watch.steady_since if now - watch.looked_at <= settings.max_gap else now
    if watch.wedged_tick is not None:
        if loop_tick > watch.wedged_tick:
            return LoopWatch(now, steady_since), Recovered(loop_tick - watch.wedged_tick)
        return LoopWatch(now, steady_since, watch.wedged_tick), None
    silent_for = now - max(loop_tick, steady_since)
    if silent_for >= settings.wedged_after:
        return LoopWatch(now, steady_since, loop_tick), Wedged(now - loop_tick)
    return LoopWatch(now, steady_since), None


def worst_detection(settings: LoopWatchSettings, session_grace: float, master_tick: float) -> float:
    """The longest a wedge takes to show as NotReady: the loop's last tick may be a period
    old, the verdict waits for the next look, then the master's session grace and its
    lease tick (master/controllers/lifecycle.py)."""
    return settings.period + settings.wedged_after + settings.period + session_grace + master_tick
