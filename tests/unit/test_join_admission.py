"""Join admission on a fake clock (master/pki/admission.py) and the agent's retry
(agent/join_retry.py): a join storm is admitted `limit` at a time, the rest told when
to come back, and the agent comes back then, spread out, without counting a failure."""

from __future__ import annotations

import pytest

from agent.join_retry import RETRY_CAP, join_wait, retry_after
from master.pki.admission import Admitted, Busy, JoinAdmission


def test_joins_beyond_the_limit_are_told_to_come_back() -> None:
    admission = JoinAdmission(limit=2, min_retry=0.5)

    assert admission.admit("a", 0.0) == Admitted()
    assert admission.admit("b", 0.0) == Admitted()
    busy = admission.admit("c", 0.0)

    assert isinstance(busy, Busy)
    assert 0.5 <= busy.retry_after <= 1.0
    assert "at most 2 at a time" in busy.message
    assert admission.in_flight == 2


def test_a_join_holds_its_slot_until_the_node_registers() -> None:
    admission = JoinAdmission(limit=1)
    admission.admit("a", 0.0)

    assert isinstance(admission.admit("b", 1.0), Busy)
    admission.finished("a", 2.0)  # a registered

    assert admission.admit("b", 2.0) == Admitted()


def test_a_node_asking_again_keeps_its_own_slot() -> None:
    admission = JoinAdmission(limit=1)
    admission.admit("a", 0.0)

    assert admission.admit("a", 1.0) == Admitted()  # its reply was lost; it tries again
    assert admission.in_flight == 1


def test_a_join_that_never_registers_gives_its_slot_back_after_the_hold() -> None:
    admission = JoinAdmission(limit=1, hold=20.0)
    admission.admit("a", 0.0)

    assert isinstance(admission.admit("b", 19.9), Busy)
    assert admission.admit("b", 20.0) == Admitted()


def test_finishing_an_unknown_join_changes_nothing() -> None:
    admission = JoinAdmission(limit=1)
    admission.admit("a", 0.0)

    admission.finished("never-admitted", 1.0)

    assert admission.in_flight == 1


def _storm(refusals_per_second: int, joins_per_second: int) -> float:
    """Ten seconds of a storm: every slot's join completes once a second and the next is
    admitted, and so many others are refused each second; the last hint."""
    admission = JoinAdmission(limit=joins_per_second, min_retry=0.5, max_retry=30.0)
    for second in range(10):
        for k in range(joins_per_second):
            admission.finished(f"n{second - 1}-{k}", second + 0.01)
            assert admission.admit(f"n{second}-{k}", second + 0.02) == Admitted()
        for k in range(refusals_per_second):
            assert isinstance(admission.admit(f"waiting-{k}", second + 0.5 + k / 1000), Busy)
    return admission.retry_after


def test_the_hint_grows_while_refused_joins_outnumber_completed_ones() -> None:
    grown = _storm(200, 10)

    assert grown > 5.0
    assert grown <= 30.0


def test_the_hint_stays_short_when_refusals_are_few() -> None:
    kept = _storm(2, 10)

    assert kept == pytest.approx(0.5)


def test_a_busy_master_is_no_failure_and_its_hint_is_spread() -> None:
    early = join_wait(busy=True, hint=4.0, delay=0.2, jitter=0.0)
    late = join_wait(busy=True, hint=4.0, delay=0.2, jitter=0.999)

    assert early.seconds == pytest.approx(2.0)
    assert late.seconds == pytest.approx(6.0, abs=0.01)
    assert not early.failure
    assert early.delay == 0.2  # the backoff does not grow


def test_a_busy_master_without_a_hint_is_waited_for_the_backoff() -> None:
    wait = join_wait(busy=True, hint=0.0, delay=0.8, jitter=0.5)

    assert wait.seconds == pytest.approx(0.8)
    assert not wait.failure


def test_an_unreachable_master_doubles_the_backoff_up_to_the_cap() -> None:
    wait = join_wait(busy=False, hint=0.0, delay=0.2, jitter=0.5)
    capped = join_wait(busy=False, hint=0.0, delay=RETRY_CAP, jitter=0.5)

    assert (wait.seconds, wait.delay, wait.failure) == (0.2, 0.4, True)
    assert capped.delay == RETRY_CAP


def test_failed_attempts_come_back_spread_over_the_backoff() -> None:
    """Agents whose joins failed in the same second (deadlines passing together on an
    overloaded master) must not all come back in the same second, at every doubling."""
    early = join_wait(busy=False, hint=0.0, delay=4.0, jitter=0.0)
    late = join_wait(busy=False, hint=0.0, delay=4.0, jitter=0.999)

    assert early.seconds == pytest.approx(2.0)
    assert late.seconds == pytest.approx(6.0, abs=0.01)
    assert early.delay == late.delay == 8.0
    assert early.failure and late.failure


@pytest.mark.parametrize(
    ("metadata", "seconds"),
    [
        ((("retry-after", "2.50"),), 2.5),
        ((("other", "1"), ("retry-after", "7")), 7.0),
        ((("retry-after", "soon"),), 0.0),
        ((("retry-after", "-1"),), 0.0),
        ((("retry-after", "inf"),), 0.0),
        ((), 0.0),
        (None, 0.0),
    ],
)
def test_the_retry_after_hint_is_read_from_the_trailing_metadata(
    metadata: tuple[tuple[str, str], ...] | None, seconds: float
) -> None:
    assert retry_after(metadata) == seconds


def test_registrations_are_admitted_alike_and_say_so() -> None:
    admission = JoinAdmission(limit=1, noun="registrations")
    admission.admit("a", 0.0)

    busy = admission.admit("b", 0.0)

    assert admission.holds("a") and not admission.holds("b")
    assert isinstance(busy, Busy)
    assert "busy admitting other registrations (at most 1 at a time)" in busy.message
    admission.finished("a", 1.0)  # its session sent its first sets
    assert not admission.holds("a")
    assert admission.admit("b", 1.0) == Admitted()


def test_a_join_whose_caller_has_too_little_time_left_takes_no_slot() -> None:
    """On an overloaded master a JoinNode waits in gRPC's queue for most of the agent's
    deadline; started with too little left, it was cancelled half done."""
    admission = JoinAdmission(limit=1, min_left=0.5)

    late = admission.admit("a", 0.0, time_left=0.4)

    assert isinstance(late, Busy)
    assert "deadline" in late.message
    assert admission.in_flight == 0
    assert admission.admit("b", 0.0, time_left=14.0) == Admitted()
    assert admission.admit("c", 0.0, time_left=None) != Admitted()  # the limit, as before


def test_the_time_a_join_needs_follows_what_joins_took_lately() -> None:
    admission = JoinAdmission(limit=10, min_left=0.5)
    for _ in range(20):
        admission.observe_join(2.0)  # an overloaded master: 2 s a join

    assert admission.least_time_left == pytest.approx(4.0)
    assert isinstance(admission.admit("a", 0.0, time_left=3.0), Busy)
    assert admission.admit("b", 0.0, time_left=5.0) == Admitted()
    for _ in range(40):
        admission.observe_join(0.01)  # quiet again
    assert admission.least_time_left == pytest.approx(0.5)
