"""Leadership (master/ha/leadership.py) on a fake clock: a leader acts only while its lease,
as last confirmed, cannot have expired — and stops one renewal interval before it could."""

from __future__ import annotations

import pytest

from master.ha.leadership import Leadership, LeaseTiming


def test_a_new_master_is_a_follower() -> None:
    leadership = Leadership(LeaseTiming())

    assert leadership.role == "follower"
    assert not leadership.acting(0.0)


def test_a_leader_acts_until_one_renewal_interval_before_its_lease_can_expire() -> None:
    leadership = Leadership(LeaseTiming(ttl=2.0, renew_every=0.5))

    leadership.won(sent_at=10.0)

    assert leadership.acting(10.0)
    assert leadership.acting(11.49)
    assert not leadership.acting(11.5)  # etcd may expire it at 12.0 at the earliest
    assert leadership.deadline == 11.5


def test_each_confirmed_renewal_extends_from_when_it_was_sent() -> None:
    leadership = Leadership(LeaseTiming(ttl=2.0, renew_every=0.5))
    leadership.won(sent_at=10.0)

    leadership.renewed(sent_at=10.5)
    leadership.renewed(sent_at=11.0)
    leadership.renewed(sent_at=10.8)  # a slow answer to an older renewal never shortens it

    assert leadership.acting(12.49)
    assert not leadership.acting(12.5)


def test_renewals_that_fail_stop_the_leader_before_anyone_else_can_lead() -> None:
    timing = LeaseTiming(ttl=2.0, renew_every=0.5)
    leadership = Leadership(timing)
    leadership.won(sent_at=0.0)
    leadership.renewed(sent_at=0.5)  # then etcd stops answering

    stopped_at = next(t / 100 for t in range(0, 1000) if not leadership.acting(t / 100))
    earliest_expiry = 0.5 + timing.ttl

    assert stopped_at <= earliest_expiry - timing.renew_every


def test_losing_the_key_stops_at_once_and_a_renewal_does_not_revive_it() -> None:
    leadership = Leadership(LeaseTiming())
    leadership.won(sent_at=0.0)

    leadership.lost()
    leadership.renewed(sent_at=0.1)

    assert leadership.role == "follower"
    assert not leadership.acting(0.2)


def test_each_election_won_is_a_new_term() -> None:
    leadership = Leadership(LeaseTiming())
    leadership.won(sent_at=0.0)
    leadership.lost()
    leadership.won(sent_at=5.0)

    assert leadership.term == 2
    assert leadership.acting(5.1)


@pytest.mark.parametrize(("ttl", "renew"), [(1.0, 0.5), (2.0, 0.0), (2.0, 1.5)])
def test_a_lease_must_outlast_two_renewals(ttl: float, renew: float) -> None:
    with pytest.raises(ValueError, match="more than twice the renewal interval"):
        LeaseTiming(ttl=ttl, renew_every=renew)


def test_the_default_lease_fails_over_within_two_seconds_and_leaves_slack_to_a_busy_leader() -> (
    None
):
    timing = LeaseTiming()
    etcd_sweep = 0.5  # etcd looks for expired leases every 500 ms

    assert (timing.ttl, timing.renew_every) == (1.0, 0.25)
    # Killed just after a renewal: the whole lease runs out, then the sweep finds it.
    assert timing.ttl + etcd_sweep < 2.0
    # A leader acts 0.75 s after its last confirmed renewal was sent: one lost renewal is free.
    leadership = Leadership(timing)
    leadership.won(sent_at=0.0)
    assert leadership.acting(0.74)
    assert not leadership.acting(0.75)


def test_a_leader_lease_is_renewed_four_times_per_lease() -> None:
    assert LeaseTiming.of(2.0) == LeaseTiming(ttl=2.0, renew_every=0.5)
    assert LeaseTiming.of(1.0) == LeaseTiming()


def test_a_leader_without_a_confirmed_renewal_for_two_leases_has_lapsed() -> None:
    # A leader cut off from etcd stays paused (only etcd can say its lease expired); after
    # two leases without a confirmed renewal another master most likely leads, and its
    # agents' sessions must not wait with it (master/ha/role.py settling).
    lead = Leadership(LeaseTiming(ttl=1.0, renew_every=0.25))
    assert not lead.lapsed(100.0)  # a follower never lapses
    lead.won(sent_at=0.0)

    assert not lead.acting(0.75) and not lead.lapsed(1.99)
    assert lead.lapsed(2.0)
    lead.renewed(sent_at=1.5)  # a late answer: alive after all
    assert not lead.lapsed(3.49) and lead.lapsed(3.5)
