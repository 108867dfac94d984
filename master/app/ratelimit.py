"""Token buckets for events a peer can cause, so no source can flood the event log.

Kubernetes' event recorder filters spam per source and object the same way: a
burst, then a slow refill. Here every event a node's reports cause passes two
buckets — one per (source, object), one per source — and is dropped when
either is empty, so one node cannot push the cluster's real events out of the
capped log however fast it reports. Pure: the caller passes the time in.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass

# Remembered buckets; the least recently used goes first beyond this.
MAX_BUCKETS = 10_000


@dataclass(frozen=True, slots=True)
class Rate:
    burst: float
    per_second: float


class TokenBuckets:
    """Token buckets keyed by anything hashable, bounded in number.

    Each bucket is (tokens, time of the last take), in an OrderedDict kept in the order of
    use: the least recently used is forgotten in O(1) (`popitem(last=False)`). A plain
    dict's `next(iter(d))` skips the holes its earlier deletions left at its front, which
    grew with every eviction until the next resize: ~17 us an eviction at 10,000 buckets,
    paid by every event of a new pod once the limiter is full (each pod's first report,
    50,000 at scale)."""

    def __init__(self, rate: Rate) -> None:
        self._rate = rate
        self._buckets: OrderedDict[object, tuple[float, float]] = OrderedDict()

    def take(self, key: object, now: float) -> bool:
        """Spend one token of `key`'s bucket if it has one."""
        buckets = self._buckets
        rate = self._rate
        held = buckets.get(key)
        if held is None:
            tokens = rate.burst
        else:
            buckets.move_to_end(key)  # most recently used last
            tokens = min(rate.burst, held[0] + max(0.0, now - held[1]) * rate.per_second)
        if tokens >= 1.0:
            tokens -= 1.0
            taken = True
        else:
            taken = False
        buckets[key] = (tokens, now)
        if len(buckets) > MAX_BUCKETS:
            buckets.popitem(last=False)
        return taken


# Per node and object: a burst of 25, then one event per 10 s (Kubernetes' spam filter
# allows 25, then one per 5 minutes; a crash loop here still shows its progress).
PER_OBJECT = Rate(burst=25, per_second=0.1)
# Per node: a burst as big as a full report of a node's pods, then 50 a second.
PER_SOURCE = Rate(burst=1000, per_second=50)


class EventLimiter:
    """Whether an event a source causes about an object may be recorded now."""

    def __init__(self, per_object: Rate = PER_OBJECT, per_source: Rate = PER_SOURCE) -> None:
        self._objects = TokenBuckets(per_object)
        self._sources = TokenBuckets(per_source)
        self.dropped = 0

    def allow(self, source: str, obj: str, now: float) -> bool:
        if self._objects.take((source, obj), now) and self._sources.take(source, now):
            return True
        self.dropped += 1
        return False
