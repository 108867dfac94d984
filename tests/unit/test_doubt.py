"""A single master after a write in doubt: pause, settle, reload, resume (master/doubt.py)."""

from __future__ import annotations

from master.doubt import RETRY_MAX_S, RETRY_MIN_S, Doubt


def test_a_master_not_in_doubt_writes_and_waits() -> None:
    doubt = Doubt()

    assert doubt.next(0.0, in_doubt=False) == "wait"
    assert doubt.refusal(0.0) is None and not doubt.paused


def test_a_write_in_doubt_pauses_settles_reloads_and_resumes_in_that_order() -> None:
    doubt = Doubt()

    assert doubt.next(1.0, in_doubt=True) == "pause"
    assert doubt.paused
    assert doubt.next(1.0, in_doubt=True) == "settle"
    doubt.settled(1.1)
    assert doubt.next(1.1, in_doubt=False) == "reload"
    doubt.reloaded(1.2)
    assert doubt.next(1.2, in_doubt=False) == "resume"
    doubt.resumed()

    assert not doubt.paused and doubt.refusal(1.3) is None
    assert doubt.next(1.3, in_doubt=False) == "wait"


def test_writes_are_refused_with_a_retryable_sentence_until_the_resume() -> None:
    doubt = Doubt()
    doubt.next(10.0, in_doubt=True)
    doubt.failed(10.0, "etcd at http://127.0.0.1:1 did not answer within 5s")

    refusal = doubt.refusal(12.5)

    assert refusal is not None
    assert refusal.startswith("etcd did not confirm a write 2.5s ago")
    assert "(last: etcd at http://127.0.0.1:1 did not answer within 5s)" in refusal
    assert refusal.endswith("retry in a moment")
    doubt.settled(13.0)
    doubt.reloaded(13.0)
    assert doubt.refusal(13.0) is not None  # reloaded, not yet resumed


def test_a_failed_settle_is_retried_after_a_doubling_backoff_up_to_the_cap() -> None:
    doubt = Doubt()
    doubt.next(0.0, in_doubt=True)
    now = 0.0
    expected = [0.1, 0.2, 0.4, 0.8, 1.6, 2.0, 2.0]
    assert expected[0] == RETRY_MIN_S and expected[-1] == RETRY_MAX_S
    for wait in expected:
        assert doubt.next(now, in_doubt=True) == "settle"
        doubt.failed(now, "unreachable")
        assert doubt.next(now + wait - 0.001, in_doubt=True) == "wait"
        now += wait
    assert doubt.next(now, in_doubt=True) == "settle"


def test_a_failed_reload_is_retried_and_the_backoff_starts_over_after_a_settle() -> None:
    doubt = Doubt()
    doubt.next(0.0, in_doubt=True)
    doubt.failed(0.0, "x")
    doubt.failed(0.1, "x")  # two failed settles: the next retry is 0.2 s away
    doubt.settled(1.0)

    assert doubt.next(1.0, in_doubt=False) == "reload"  # at once, not after the backoff
    doubt.failed(1.0, "a page of objects timed out")
    assert doubt.next(1.05, in_doubt=False) == "wait"
    assert doubt.next(1.0 + RETRY_MIN_S, in_doubt=False) == "reload"


def test_a_store_in_doubt_again_before_the_resume_is_settled_again() -> None:
    doubt = Doubt()
    doubt.next(0.0, in_doubt=True)
    doubt.settled(0.5)

    # A write after the settle was not confirmed either: its fate must be settled first.
    assert doubt.next(0.6, in_doubt=True) == "settle"
    doubt.settled(0.7)
    doubt.reloaded(0.8)
    assert doubt.next(0.9, in_doubt=True) == "settle"


def test_an_answer_for_another_phase_changes_nothing() -> None:
    doubt = Doubt()
    doubt.settled(0.0)
    doubt.reloaded(0.0)

    assert doubt.phase == "writing"
    doubt.next(1.0, in_doubt=True)
    doubt.reloaded(1.0)  # a reload is no settle
    assert doubt.next(1.0, in_doubt=False) == "settle"
