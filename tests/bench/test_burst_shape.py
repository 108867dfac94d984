"""burst_shape's pure parts: when each create leaves, and the rotation of shapes."""

from __future__ import annotations

import pytest

from tests.bench.burst_shape import offsets, rotated, summary


def test_together_sends_every_create_at_once_and_stagger_spaces_them() -> None:
    assert offsets("together") == [0.0, 0.0, 0.0]
    assert offsets("stagger 0.03") == pytest.approx([0.0, 0.03, 0.06])
    with pytest.raises(ValueError):
        offsets("sideways")


def test_no_shape_always_runs_first() -> None:
    shapes = ["a", "b", "c"]
    firsts = {rotated(shapes, r)[0] for r in range(3)}
    assert firsts == set(shapes)
    assert sorted(rotated(shapes, 4)) == shapes


def test_summary_is_median_min_max() -> None:
    assert summary([3.0, 1.0, 2.0]) == "2.000 (1.000-3.000)"
