"""When the master's own loop could not read heartbeats (pure): silence it must excuse.

Heartbeats are read on the master's one event loop. During a big apply the loop ran
thousands of agents' status reports back to back: a timer asked for 50 ms later ran
seconds later, and a heartbeat sent on time was read 25-114 s after it was sent, behind
its own stream's reports. The node lifecycle then saw 4,049 of 5,000 nodes silent past
their lease, marked healthy nodes NotReady and replaced their pods: more work for a loop
already behind. Kubernetes' node lifecycle controller does not blame nodes for its own
unavailability; neither does this: the loop-lag probe (master/metrics/looplag.py)
notes each late wake-up here (the loop held over [woke - lateness, woke]), and a node's
silence counts only the time the loop was free to hear it (`held_between`).

Only silence is excused. A session stream that ended is still judged by its own grace,
and once the loop runs freely again every node's lease runs as before: a node dead
during the overload is found a lease after the loop is free, not before.

The intervals are disjoint and in order (one probe sleep each), kept with a running total
so `held_between` is a bisection, not a walk, per node per pass.
"""

from __future__ import annotations

import bisect

# Lateness below this is the loop's ordinary jitter: not noted (looplag.STALL_SECONDS).
MIN_HELD_SECONDS = 0.05
# Intervals older than this are forgotten (well beyond any lease: 40 s at 5,000 nodes).
KEEP_SECONDS = 600.0


class HeldLedger:
    """The recent intervals the master's loop was held (monotonic seconds)."""

    def __init__(self) -> None:
        self._starts: list[float] = []
        self._ends: list[float] = []
        # Held seconds summed over every interval up to and including index i.
        self._totals: list[float] = []
        # Held seconds in intervals already forgotten (keeps _totals comparable).
        self._forgotten = 0.0

    def note(self, woke: float, late: float) -> None:
        """The loop woke at `woke`, `late` seconds after it asked: held over that span."""
        if late < MIN_HELD_SECONDS:
            return
        start = woke - late
        if self._ends and start < self._ends[-1]:
            start = self._ends[-1]  # never overlap (a clock step, or two probes)
            if start >= woke:
                return
        total = (self._totals[-1] if self._totals else self._forgotten) + (woke - start)
        self._starts.append(start)
        self._ends.append(woke)
        self._totals.append(total)
        self._forget(woke - KEEP_SECONDS)

    def _forget(self, before: float) -> None:
        cut = bisect.bisect_left(self._ends, before)
        if cut > len(self._ends) // 2 and cut > 64:  # amortised: rarely, in one slice
            self._forgotten = self._totals[cut - 1]
            del self._starts[:cut], self._ends[:cut], self._totals[:cut]

    def _held_until(self, t: float) -> float:
        """Held seconds over every noted interval up to moment `t`."""
        i = bisect.bisect_left(self._ends, t)  # intervals before i ended before t
        done = self._totals[i - 1] if i else self._forgotten
        if i < len(self._starts) and self._starts[i] < t:
            done += t - self._starts[i]  # t falls inside interval i
        return done

    def held_between(self, since: float | None, now: float) -> float:
        """Seconds of [since, now] during which the loop was held (0 when since is None)."""
        if since is None or now <= since or not self._ends:
            return 0.0
        return max(0.0, self._held_until(now) - self._held_until(since))
