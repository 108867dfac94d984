"""The master's pod probe judges a silent node by at least half of its probed pods."""

from __future__ import annotations

import pytest

from master.lb.reachability import node_answers


@pytest.mark.parametrize(
    ("answers", "alive"),
    [
        ([], False),
        ([True], True),
        ([False], False),
        ([True, False], True),  # one crashed container of two: still alive
        ([True, False, False], False),  # one stray answer of three: not enough
        ([True, True, False], True),
        ([True, False, False, False], False),  # any one pod no longer decides
        ([True, True, False, False], True),
        ([True, True, True, True], True),
    ],
)
def test_node_answers(answers: list[bool], alive: bool) -> None:
    assert node_answers(answers) is alive
