"""Token buckets for events a peer can cause, so no source can flood the event log.

Kubernetes' event recorder filters spam per source and object the same way: a
burst, then a slow refill. Here every event a node's reports cause passes two
buckets — one per (source, object), one per source — and is dropped when
either is empty, so one node cannot push the cluster's real events out of the
capped log however fast it reports. Pure: the caller passes the time in.
"""

from __future__ import annotations

from dataclasses import dataclass

# Remembered buckets; the least recently used goes first beyond this.
MAX_BUCKETS = 10_000


@dataclass(frozen=True, slots=True)
class Rate:
    burst: float
    per_second: float


@dataclass(slots=True)
class _Bucket:
    tokens: float
    at: float


class TokenBuckets:
    """Token buckets keyed by anything hashable, bounded in number."""

    def __init__(self, rate: Rate) -> None:
        self._rate = rate
        self._buckets: dict[object, _Bucket] = {}

    def take(self, key: object, now: float) -> bool:
        """Spend one token of `key`'s bucket if it has one."""
        bucket = self._buckets.pop(key, None)
        if bucket is None:
            bucket = _Bucket(self._rate.burst, now)
        else:
            refill = max(0.0, now - bucket.at) * self._rate.per_second
            bucket.tokens = min(self._rate.burst, bucket.tokens + refill)
            bucket.at = now
        self._buckets[key] = bucket  # most recently used last
        if len(self._buckets) > MAX_BUCKETS:
            del self._buckets[next(iter(self._buckets))]
        if bucket.tokens < 1.0:
            return False
        bucket.tokens -= 1.0
        return True


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
