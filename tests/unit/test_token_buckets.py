"""TokenBuckets: a burst then a refill per key, and at most MAX_BUCKETS keys remembered, the
least recently used forgotten first (kept in an OrderedDict: master/app/ratelimit.py)."""

from __future__ import annotations

import pytest

from master.app import ratelimit
from master.app.ratelimit import Rate, TokenBuckets


def _drain(buckets: TokenBuckets, key: str, now: float) -> int:
    taken = 0
    while buckets.take(key, now):
        taken += 1
    return taken


def test_a_burst_then_one_token_a_refill_period() -> None:
    buckets = TokenBuckets(Rate(burst=3, per_second=0.5))

    assert _drain(buckets, "a", 0.0) == 3
    assert not buckets.take("a", 1.0)  # half a token back
    assert buckets.take("a", 2.0)  # (1.0 s later: the second half; one token)
    assert not buckets.take("a", 2.0)
    assert _drain(buckets, "a", 100.0) == 3  # never above the burst


def test_the_least_recently_used_key_is_forgotten_first(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(ratelimit, "MAX_BUCKETS", 3)
    buckets = TokenBuckets(Rate(burst=1, per_second=0.0))
    for key in ("a", "b", "c"):
        assert buckets.take(key, 0.0)
    assert not buckets.take("a", 0.0)  # used again: "b" is now the least recently used

    assert buckets.take("d", 0.0)  # a fourth key: "b" is forgotten

    assert not buckets.take("a", 0.0)
    assert not buckets.take("c", 0.0)
    assert buckets.take("b", 0.0)  # forgotten: a full burst again (and "d" goes)
    assert buckets.take("d", 0.0)


def test_many_keys_keep_the_newest_bound(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(ratelimit, "MAX_BUCKETS", 100)
    buckets = TokenBuckets(Rate(burst=1, per_second=0.0))
    for i in range(1000):
        assert buckets.take(i, 0.0)

    assert not any(buckets.take(i, 0.0) for i in range(900, 1000))  # the newest 100 kept
    assert buckets.take(899, 0.0)
