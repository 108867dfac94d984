"""Reading the master's /metrics in benches (tests/bench/master_metrics.py)."""

from __future__ import annotations

import math

import pytest

from tests.bench.master_metrics import buckets, delta, parse, quantile, total

TEXT = """\
# HELP pinnace_event_loop_lag_seconds lag
# TYPE pinnace_event_loop_lag_seconds histogram
pinnace_event_loop_lag_seconds_bucket{le="0.01"} 90.0
pinnace_event_loop_lag_seconds_bucket{le="0.05"} 99.0
pinnace_event_loop_lag_seconds_bucket{le="0.1"} 100.0
pinnace_event_loop_lag_seconds_bucket{le="+Inf"} 100.0
pinnace_event_loop_lag_seconds_count 100.0
pinnace_event_loop_lag_seconds_sum 0.5
# HELP pinnace_event_loop_stalls_total stalls
# TYPE pinnace_event_loop_stalls_total counter
pinnace_event_loop_stalls_total{cause="busy"} 3.0
pinnace_event_loop_stalls_total{cause="starved"} 5.0
"""


def test_quantiles_interpolate_within_a_bucket_as_prometheus_does() -> None:
    lag = buckets(parse(TEXT), "pinnace_event_loop_lag_seconds")
    assert lag == [(0.01, 90.0), (0.05, 99.0), (0.1, 100.0), (math.inf, 100.0)]
    assert quantile(lag, 0.5) == pytest.approx(0.01 * 50 / 90)
    assert quantile(lag, 0.99) == pytest.approx(0.05)
    assert quantile(lag, 0.995) == pytest.approx(0.075)


def test_no_observation_is_nan_and_the_inf_bucket_gives_the_largest_bound() -> None:
    assert math.isnan(quantile([(0.1, 0.0), (math.inf, 0.0)], 0.5))
    assert quantile([(0.1, 1.0), (math.inf, 10.0)], 0.99) == 0.1


def test_a_window_is_the_difference_of_two_scrapes() -> None:
    before = parse(TEXT)
    after = parse(TEXT.replace('cause="busy"} 3.0', 'cause="busy"} 7.0'))
    window = delta(after, before)
    assert total(window, "pinnace_event_loop_stalls_total", cause="busy") == 4.0
    assert total(window, "pinnace_event_loop_stalls_total", cause="starved") == 0.0
    assert total(after, "pinnace_event_loop_stalls_total") == 12.0
