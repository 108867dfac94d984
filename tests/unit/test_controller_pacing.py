"""The controller loop's rest after a pass: controllers take at most half the loop."""

from __future__ import annotations

import pytest

from master.controllers.pacing import rest_after_pass


@pytest.mark.parametrize(
    ("pass_seconds", "rest"),
    [
        (0.0, 0.0),  # a fake clock, or a tiny cluster: no rest at all
        (0.009, 0.0),  # still cheap
        (0.01, 0.01),  # from here on the loop rests as long as the pass took
        (0.2, 0.2),
        (0.8, 0.8),
        (3.0, 1.0),  # capped: a very slow pass does not delay the next one as much
    ],
)
def test_rest_equals_the_pass_for_half_of_the_loop(pass_seconds: float, rest: float) -> None:
    assert rest_after_pass(pass_seconds) == pytest.approx(rest)


def test_a_smaller_share_rests_longer() -> None:
    assert rest_after_pass(0.1, share=0.25) == pytest.approx(0.3)
