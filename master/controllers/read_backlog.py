"""How late the master reads its own agents' streams (pure): silence it must not blame.

The master reads every session stream on its one event loop. During a big apply
(5,000 hollow nodes, 50,000 pods) the agents handed each heartbeat to gRPC on time and
the master's gRPC core answered their keepalive pings, but the servicer's `async for`
read the fleet's beats 20-90 s after they were sent (p50 72 s in the apply's first
20 s), behind the loop's other work. A backlog that grows stretches the gap between two
reads of one node's beats by as much as it grows; the node lifecycle saw 2,000-4,250
healthy nodes past their 22 s lease, and evicted ~48,000 pods once. The loop-lag ledger
(loop_held.py) excuses only late wake-ups of its own probe, not a queue of ready work.

So each heartbeat carries the agent's wall-clock send time (Heartbeat.sent_at), and this
module keeps, per node, the delay between that and the master's read:

  * per node, the delay less the node's own offset: the least delay it showed within the
    last 5-10 min (two buckets of BASELINE_BUCKET_SECONDS), which takes out its clock's
    skew (and its path's fixed delay), however large. A node first heard during a backlog
    has that backlog in its offset and under-reports it: the safe side (less excuse);
  * the fleet's backlog: how far behind the master's reading is now, from the newest
    reads (one per node: those within FRESH_SECONDS of the newest, at least MIN_NODES of
    them if they came within WINDOW_SECONDS, at most RECENT): each says its stream was read
    up to its send time, i.e. its delay plus the time since it was read. Fewer than
    MIN_NODES nodes: no excuse (a cluster of one or two nodes is judged as before).
    Nothing while their delays' median is ACTIVE_SECONDS or less (one node's clock or
    queue, or a few, cannot open the excuse, and neither can silence alone: a fleet that
    stops beating is not a master that reads late); above it, their EXCUSE_QUANTILE (90th
    percentile: the streams are read at different lags; robust to a tenth of them lying
    or skewed), plus the time since the newest read: a master known to be behind that
    reads nothing more falls further behind with the clock (in the apply, beats sent in
    its first 20 s were read ~70 s later: for a while hardly any beat was read at all).
    The newest reads, not each node's newest: while the backlog grows, a node's newest
    read is up to an interval old and says the delay of then, not of now. Never more than
    MAX_BACKLOG_SECONDS; nothing once no beat was read for that long.

How it is used (master/controllers/lifecycle.py): a node whose session stream is open is
judged by its lease plus the backlog now (its silence counts less the larger of this and
the loop-held time). A backlog that stays constant never makes a node late (a pipe with
a constant 70 s delay keeps the beats' rate): only its growth does, and the excuse is at
least that growth. The false negative is bounded: a node that really died (hung with its
stream open; a killed or cut node's stream ends and is judged by that, unexcused) is
found once it was silent for its lease plus the backlog then, i.e. within lease +
backlog after its last beat was read (a node found healthy is looked at again when the
deadline it was given then comes, master/controllers/node_watch.py: at worst lease + the
largest backlog excused since its last read). The backlog is measured from beats read,
so it opens only on what the master saw: a master that reads nothing while it is not
known to be behind (its loop stopped: loop_held.py's case; or every node silent) excuses
nothing here, and a dead node is found within lease + MAX_BACKLOG_SECONDS at worst.
Agents that do not stamp their beats (older) give no samples: they are judged by the
fleet's backlog like the rest.

Pure: the caller passes both clocks' readings in.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass

# The fleet's median delay above which the master counts itself behind (below: jitter,
# clock noise, the ordinary cost of a busy loop; nothing is excused).
ACTIVE_SECONDS = 1.0
# The share of nodes whose delay the excuse covers once it is open.
EXCUSE_QUANTILE = 0.9
# The newest reads (one per node) that make the backlog: those read within FRESH_SECONDS
# of the newest (monotonic), at least MIN_NODES if read within WINDOW_SECONDS of it, at
# most RECENT.
FRESH_SECONDS = 1.0
MIN_NODES = 3
RECENT = 64
WINDOW_SECONDS = 5.0
# The most silence the backlog excuses (and how long after the last read it lasts).
MAX_BACKLOG_SECONDS = 120.0
# At most this many of the newest samples are kept (250 beats a second at 5,000 nodes:
# the whole window at the heartbeat cap, 2x).
MAX_SAMPLES = 2048
# A node's offset is its least delay in the current and the previous bucket of this length.
BASELINE_BUCKET_SECONDS = 300.0


@dataclass(slots=True)
class _Offset:
    started: float
    current: float
    previous: float = math.inf

    def see(self, raw: float, mono: float) -> float:
        if mono - self.started >= BASELINE_BUCKET_SECONDS:
            self.previous, self.current, self.started = self.current, raw, mono
        elif raw < self.current:
            self.current = raw
        return min(self.current, self.previous)


@dataclass(frozen=True, slots=True)
class Backlog:
    """The fleet's read backlog now: `excuse` seconds (0: not behind), from `nodes` nodes'
    newest samples with median `median`."""

    excuse: float
    median: float
    nodes: int


NOT_BEHIND = Backlog(0.0, 0.0, 0)


class ReadBacklog:
    """The recent send -> read delays of the fleet's heartbeats (see the module docstring)."""

    def __init__(self) -> None:
        self._offsets: dict[str, _Offset] = {}
        # (read at, monotonic; node; delay less the node's offset), oldest first.
        self._samples: deque[tuple[float, str, float]] = deque(maxlen=MAX_SAMPLES)

    def observe(self, node: str, sent_wall: float, read_wall: float, read_mono: float) -> float:
        """A heartbeat of `node`, sent at `sent_wall` (its agent's clock), read now; the
        delay counted for it (seconds, >= 0). A beat without a send time (0) counts nothing."""
        if sent_wall <= 0:
            return 0.0
        raw = read_wall - sent_wall
        offset = self._offsets.get(node)
        if offset is None:
            offset = self._offsets[node] = _Offset(read_mono, raw)
        delay = max(0.0, raw - offset.see(raw, read_mono))
        self._samples.append((read_mono, node, delay))
        return delay

    def backlog(self, now_mono: float) -> Backlog:
        """The fleet's backlog at `now_mono` from the RECENT newest reads (see the module
        docstring): an excuse only while their delays' median is over ACTIVE_SECONDS."""
        if not self._samples:
            return NOT_BEHIND
        newest = self._samples[-1][0]
        since = max(0.0, now_mono - newest)
        if since > MAX_BACKLOG_SECONDS:
            return NOT_BEHIND
        oldest = newest - WINDOW_SECONDS
        seen: set[str] = set()
        delays: list[float] = []
        # How far behind each stream's reading was at the newest read.
        behind: list[float] = []
        fresh = newest - FRESH_SECONDS
        for read_at, node, delay in reversed(self._samples):
            if read_at < oldest or len(seen) >= RECENT:
                break
            if read_at < fresh and len(seen) >= MIN_NODES:
                break
            if node not in seen:
                seen.add(node)
                delays.append(delay)
                behind.append(delay + newest - read_at)
        if len(delays) < MIN_NODES:
            return NOT_BEHIND
        delays.sort()
        median = delays[len(delays) // 2]
        if median <= ACTIVE_SECONDS:
            return Backlog(0.0, median, len(delays))
        behind.sort()
        at = min(len(behind) - 1, int(EXCUSE_QUANTILE * len(behind)))
        return Backlog(min(MAX_BACKLOG_SECONDS, behind[at] + since), median, len(delays))

    def forget(self, node: str) -> None:
        """The node is gone (deleted): its offset goes (its samples age out)."""
        self._offsets.pop(node, None)
