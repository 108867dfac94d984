"""LeaderElector (master/ha/elector.py) on a fake clock and a fake etcd. However a leader stops
leading — its key taken, a graceful stop — it fences its writes, then stops its controllers,
and only then revokes its lease: revoking first let another master win the key while this
one's controllers still ran (issue 14's early-revoke race). A leader whose renewals fail past
its deadline pauses (stops acting, keeps key and lease) and resumes if etcd still renews the
lease, or steps down when etcd says it expired."""

from __future__ import annotations

import asyncio
import threading
from typing import Any

import pytest

from master.ha.elector import LeaderElector, MasterInfo
from master.ha.leadership import LeaseTiming
from master.store.etcd_lease import Held
from master.store.port import StoreError

PREFIX = b"/t/"
# However long stopping the controllers takes, the lease must outlive it (a revoke task
# started first would run on its thread meanwhile).
CONTROLLERS_STOP_S = 0.05


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


class FakeEtcd:
    """Keys on leases, one revision counter; `down` makes every call fail as etcd would."""

    def __init__(self, events: list[str]) -> None:
        self.events = events
        self.keys: dict[bytes, tuple[bytes, int, int]] = {}
        self.leases: set[int] = set()
        self.revision = 1
        self.down = False
        self.renewals_fail = False
        self._lock = threading.Lock()

    def _check(self) -> None:
        if self.down:
            raise StoreError("etcd did not answer")

    def grant(self, ttl: int) -> tuple[int, int]:
        self._check()
        with self._lock:
            lease = 1000 + len(self.leases) + len(self.events)
            self.leases.add(lease)
        return lease, ttl

    def keepalive(self, lease: int, timeout: float) -> int:
        self._check()
        if self.renewals_fail:
            raise StoreError("etcd did not renew the lease in time")
        return 1 if lease in self.leases else 0

    def revoke(self, lease: int) -> None:
        self._check()
        with self._lock:
            self.leases.discard(lease)
            self.keys = {k: v for k, v in self.keys.items() if v[2] != lease}
            self.events.append("lease revoked")

    def put_on_lease(self, key: bytes, value: bytes, lease: int) -> None:
        self._check()
        with self._lock:
            self.revision += 1
            self.keys[key] = (value, self.revision, lease)

    def held(self, key: bytes) -> Held:
        self._check()
        value, created, lease = self.keys.get(key, (b"", 0, 0))
        return Held(value, created, lease)

    def take_vacant(self, key: bytes, value: bytes, lease: int) -> tuple[bool, Held]:
        self._check()
        with self._lock:
            if key in self.keys:
                return False, self.held(key)
            self.revision += 1
            self.keys[key] = (value, self.revision, lease)
            return True, Held(value, self.revision, lease)


class FakeStore:
    prefix = PREFIX

    def __init__(self, events: list[str], etcd: FakeEtcd) -> None:
        self.events = events
        self.etcd = etcd
        self.in_doubt = False

    def settle(self) -> None:
        self.etcd._check()
        self.events.append("log settled")
        self.in_doubt = False

    def set_guard(self, compares: list[Any]) -> None:
        if compares and compares[0].create_revision == -1:
            self.events.append("writes fenced")


def make_elector() -> tuple[LeaderElector, FakeEtcd, FakeClock, list[str]]:
    elector, etcd, clock, events, _store = make_elector_and_store()
    return elector, etcd, clock, events


def make_elector_and_store() -> tuple[LeaderElector, FakeEtcd, FakeClock, list[str], FakeStore]:
    events: list[str] = []
    etcd = FakeEtcd(events)
    clock = FakeClock()

    async def elected() -> None:
        events.append("controllers started")

    async def deposed() -> None:
        await asyncio.sleep(CONTROLLERS_STOP_S)
        events.append("controllers stopped")

    store = FakeStore(events, etcd)
    elector = LeaderElector(
        store,
        etcd,
        MasterInfo("m0", "10.0.0.1:7400", 0.0),
        LeaseTiming(),
        elected,
        deposed,
        monotonic=clock,
    )
    return elector, etcd, clock, events, store


STEP_DOWN = ["controllers started", "writes fenced", "controllers stopped", "lease revoked"]


async def scenario_a_leader_whose_renewals_fail_pauses_and_keeps_its_key() -> None:
    elector, etcd, clock, events = make_elector()
    await elector.step()
    assert elector.is_leader()

    etcd.renewals_fail = True  # etcd electing a Raft leader of its own, say
    clock.now += 0.5
    await elector.step()
    assert elector.is_leader()  # one lost renewal is absorbed
    clock.now += 0.3
    await elector.step()  # past 0.75 s since the last confirmed renewal was sent

    assert not elector.is_leader()
    assert elector.paused
    assert events == ["controllers started", "writes fenced", "controllers stopped"]
    assert elector.leader_key in etcd.keys  # no revoke: its lease may well be alive


async def scenario_a_leader_past_its_deadline_is_paused_before_a_tick_notices() -> None:
    # A tick can wait on etcd (a renewal, a read of the key) past the deadline; in that gap
    # writes must wait for the lease as in a pause, not hear that no master leads.
    elector, _etcd, clock, events = make_elector()
    await elector.step()
    clock.now += 0.74
    assert elector.is_leader() and not elector.paused

    clock.now += 0.02  # no step ran: the deadline (0.75 s after the last renewal) passed

    assert not elector.is_leader()
    assert elector.paused
    assert events == ["controllers started"]  # nothing stopped yet: the next tick does it


async def scenario_a_paused_leader_whose_lease_etcd_still_renews_resumes() -> None:
    elector, etcd, clock, events = make_elector()
    await elector.step()
    etcd.renewals_fail = True
    clock.now += 0.8
    await elector.step()
    assert elector.paused

    etcd.renewals_fail = False  # etcd answers: the lease never lapsed, nobody else led
    clock.now += 0.25
    await elector.step()

    assert elector.is_leader()
    assert not elector.paused
    assert events == [
        "controllers started",
        "writes fenced",
        "controllers stopped",
        "controllers started",
    ]


async def scenario_a_paused_leader_whose_lease_expired_steps_down() -> None:
    elector, etcd, clock, events = make_elector()
    await elector.step()
    etcd.renewals_fail = True
    clock.now += 0.8
    await elector.step()

    etcd.renewals_fail = False
    etcd.leases.clear()  # etcd let it run out (and deleted the key)
    etcd.keys.pop(elector.leader_key)
    clock.now += 0.25
    await elector.step()
    await elector.settled()

    assert not elector.is_leader()
    assert not elector.paused
    assert elector.leadership.role == "follower"
    # The controllers were stopped once, when it paused; nothing is left to revoke.
    assert events == [
        "controllers started",
        "writes fenced",
        "controllers stopped",
        "writes fenced",
    ]


async def scenario_a_leader_whose_key_was_taken_stops_its_controllers_before_revoking() -> None:
    elector, etcd, clock, events = make_elector()
    await elector.step()
    etcd.keys.pop(elector.leader_key)
    etcd.put_on_lease(elector.leader_key, b"{}", 7)

    clock.now += 0.1
    await elector.step()
    await elector.settled()

    assert events == STEP_DOWN


async def scenario_a_leader_stopped_gracefully_stops_its_controllers_before_revoking() -> None:
    elector, etcd, _clock, events = make_elector()
    running = asyncio.create_task(elector.run())
    while "controllers started" not in events:
        await asyncio.sleep(0.01)

    running.cancel()
    with pytest.raises(asyncio.CancelledError):
        await running

    assert events == STEP_DOWN
    assert elector.leader_key not in etcd.keys  # handed over at once


async def scenario_a_follower_does_not_campaign_while_the_leader_key_is_held() -> None:
    elector, etcd, _clock, events = make_elector()
    etcd.keys[elector.leader_key] = (MasterInfo("m1", "10.0.0.2:7400", 0.0).encode(), 1, 7)

    await elector.step()

    assert not elector.is_leader()
    leader = elector.leader()
    assert leader is not None and leader.name == "m1"
    assert events == []


async def scenario_a_leader_with_a_write_in_doubt_reloads_only_after_settling_the_log() -> None:
    # etcd timed out on a transaction it may commit once its quorum returns: the leader's
    # memory may lack it. It stops acting, and takes over again (on_elected reloads memory
    # from etcd) only once a write of its own has gone through etcd's log after it.
    elector, etcd, clock, events, store = make_elector_and_store()
    await elector.step()
    store.in_doubt = True
    etcd.down = True  # still no quorum: the settling write cannot go through
    clock.now += 0.1
    await elector.step()

    assert elector.paused and not elector.is_leader()
    assert events == ["controllers started", "writes fenced", "controllers stopped"]

    etcd.down = False
    clock.now += 0.1
    await elector.step()

    assert elector.is_leader() and not elector.paused and not store.in_doubt
    assert events == [
        "controllers started",
        "writes fenced",
        "controllers stopped",
        "log settled",
        "controllers started",
    ]


def test_a_leader_with_a_write_in_doubt_reloads_only_after_settling_the_log() -> None:
    asyncio.run(scenario_a_leader_with_a_write_in_doubt_reloads_only_after_settling_the_log())


def test_a_leader_whose_renewals_fail_pauses_and_keeps_its_key() -> None:
    asyncio.run(scenario_a_leader_whose_renewals_fail_pauses_and_keeps_its_key())


def test_a_leader_past_its_deadline_is_paused_before_a_tick_notices() -> None:
    asyncio.run(scenario_a_leader_past_its_deadline_is_paused_before_a_tick_notices())


def test_a_paused_leader_whose_lease_etcd_still_renews_resumes() -> None:
    asyncio.run(scenario_a_paused_leader_whose_lease_etcd_still_renews_resumes())


def test_a_paused_leader_whose_lease_expired_steps_down() -> None:
    asyncio.run(scenario_a_paused_leader_whose_lease_expired_steps_down())


def test_a_leader_whose_key_was_taken_stops_its_controllers_before_revoking() -> None:
    asyncio.run(scenario_a_leader_whose_key_was_taken_stops_its_controllers_before_revoking())


def test_a_leader_stopped_gracefully_stops_its_controllers_before_revoking() -> None:
    asyncio.run(scenario_a_leader_stopped_gracefully_stops_its_controllers_before_revoking())


def test_a_follower_does_not_campaign_while_the_leader_key_is_held() -> None:
    asyncio.run(scenario_a_follower_does_not_campaign_while_the_leader_key_is_held())
