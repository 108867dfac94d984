"""The master's pod probe judges a silent node by at least half of its probed pods, and only
after several failed rounds in a row."""

from __future__ import annotations

import pytest

from master.lb.reachability import MISSED_ROUNDS_TO_FAIL, next_verdict, node_answers


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


def _verdicts(rounds: list[bool]) -> list[bool | None]:
    verdict = None
    seen: list[bool | None] = []
    for answered in rounds:
        verdict = next_verdict(verdict, answered)
        seen.append(verdict.answering)
    return seen


def test_one_failed_round_does_not_make_answering_pods_silent() -> None:
    # A round's connects time out when the master's loop is starved on a loaded machine:
    # a node whose pods answered keeps that verdict until MISSED_ROUNDS_TO_FAIL rounds fail.
    assert MISSED_ROUNDS_TO_FAIL == 3
    assert _verdicts([True, False, False, True, False]) == [True, True, True, True, True]
    assert _verdicts([True, False, False, False]) == [True, True, True, False]


def test_pods_never_heard_are_unknown_until_enough_rounds_fail() -> None:
    assert _verdicts([False, False, False, True]) == [None, None, False, True]
