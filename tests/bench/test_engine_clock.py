"""The bench's engine clock: Docker's State.StartedAt read to the microsecond."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from tests.bench.engine import BenchError, started_at

BASE = datetime(2026, 12, 1, 16, 0, 0, tzinfo=UTC).timestamp()


def test_nanoseconds_are_kept_to_the_microsecond_and_more() -> None:
    assert started_at("2026-12-01T16:00:00.123456789Z") == pytest.approx(BASE + 0.123456789)


def test_fewer_digits_are_a_fraction_not_an_integer() -> None:
    # Docker drops trailing zeros: ".5Z" is half a second, not five nanoseconds.
    assert started_at("2026-12-01T16:00:00.5Z") == pytest.approx(BASE + 0.5)


def test_whole_seconds_and_an_offset() -> None:
    assert started_at("2026-12-01T16:00:00Z") == BASE
    assert started_at("2026-12-01T17:00:00.25+01:00") == pytest.approx(BASE + 0.25)


def test_a_container_that_never_started_is_an_error() -> None:
    with pytest.raises(BenchError):
        started_at("0001-01-01T00:00:00Z")
