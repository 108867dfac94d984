"""LeaderElector: runs for leadership through an etcd lease and keeps it, or lets it go.

Every master with `--leader-elect` holds an etcd lease (`--leader-lease`, 1 s by
default) and renews it every quarter of it; its entry under
`<prefix>masters/<name>` is attached to it, so the list of masters is the list of
live leases. A follower looks at `<prefix>leader` every tick; when the key is
absent it campaigns with one transaction: "if leader does not exist, put it,
attached to my lease". The winner's guard — every later store write compares the
leader key's create_revision with the one it created — makes its writes
conditional on still holding it. A leader whose renewals fail for too long
(leadership.py decides when) pauses: it stops acting but keeps its key and lease,
and resumes if etcd still renews the lease (an etcd member electing a new Raft
leader stalls renewals about that long). Leadership ends when etcd says the lease
expired, or when the key is no longer the one it created; then writes are fenced,
`on_deposed` stops the controllers, and only then is the lease revoked (revoking
first would let another master take over while this one's controllers still ran).
The master then campaigns again with a fresh lease.

A leader whose write etcd neither confirmed nor refused (a timeout while etcd had lost
quorum: the transaction may still be committed when the quorum returns) pauses too, and
resumes only after a write of its own has settled etcd's log and memory has been reloaded
from etcd (`on_elected`): otherwise its memory could lack a change etcd holds.

A dead leader's key goes when etcd's expiry sweep (every 500 ms) finds its lease
run out; followers do not revoke it early: etcd reports TTLs in whole seconds, so
with a 1 s lease a follower cannot tell a live leader from a dead one.

The etcd calls are blocking (EtcdClient) and run on this elector's own threads, so
a busy default executor (store flushes at 1,000 nodes) never delays a renewal.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar

from master.ha.leadership import Leadership, LeaseTiming
from master.store.etcd_lease import Held, holds
from master.store.port import StoreError

log = logging.getLogger(__name__)

# How often a leader checks its own key, and a follower the leader's key and lease
# (a follower's tick bounds how late it sees the key gone: it is the takeover's slack).
TICK_S = 0.1
FOLLOWER_TICK_S = 0.05


@dataclass(frozen=True, slots=True)
class MasterInfo:
    name: str
    address: str
    started_at: float
    # Its Kubernetes API's URL ("" when it serves none): where a follower forwards writes.
    api_url: str = ""

    def encode(self) -> bytes:
        doc: dict[str, object] = {
            "name": self.name,
            "address": self.address,
            "startedAt": self.started_at,
        }
        if self.api_url:
            doc["apiUrl"] = self.api_url
        return json.dumps(doc, separators=(",", ":")).encode()

    @staticmethod
    def decode(data: bytes) -> MasterInfo | None:
        try:
            doc = json.loads(data)
            return MasterInfo(
                str(doc["name"]),
                str(doc["address"]),
                float(doc["startedAt"]),
                str(doc.get("apiUrl", "")),
            )
        except (ValueError, KeyError, TypeError, AttributeError):
            return None


T = TypeVar("T")


class LeaseCalls(Protocol):
    """The etcd calls leader election makes (master/store/etcd_lease.EtcdLeases)."""

    def grant(self, ttl: int) -> tuple[int, int]: ...
    def keepalive(self, lease: int, timeout: float) -> int: ...
    def revoke(self, lease: int) -> None: ...
    def put_on_lease(self, key: bytes, value: bytes, lease: int) -> None: ...
    def held(self, key: bytes) -> Held: ...
    def take_vacant(self, key: bytes, value: bytes, lease: int) -> tuple[bool, Held]: ...


class GuardedStore(Protocol):
    """The store whose writes the leader key guards (master/store/etcd.EtcdStore)."""

    @property
    def prefix(self) -> bytes: ...
    def set_guard(self, compares: list[Any]) -> None: ...

    # A write's outcome is unknown (etcd did not answer in time) and not settled since.
    in_doubt: bool

    def settle(self) -> None: ...


class LeaderElector:
    """See the module docstring. `leader()` names the current leader for refusals."""

    def __init__(
        self,
        store: GuardedStore,
        etcd: LeaseCalls,
        me: MasterInfo,
        timing: LeaseTiming,
        on_elected: Callable[[], Awaitable[None]],
        on_deposed: Callable[[], Awaitable[None]],
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._store = store
        self._etcd = etcd
        self._monotonic = monotonic
        # Two threads: a renewal never queues behind a slow read, nor behind anyone else's.
        self._threads = ThreadPoolExecutor(2, thread_name_prefix="leader-election")
        self._warned_ttl = False
        self._me = me
        self.leadership = Leadership(timing)
        self._on_elected = on_elected
        self._on_deposed = on_deposed
        self.leader_key = store.prefix + b"leader"
        self.member_key = store.prefix + b"masters/" + me.name.encode()
        self._lease = 0
        self._lease_sent_at = 0.0
        self._next_renewal = 0.0
        self._my_create_revision = 0
        self._leader: MasterInfo | None = None
        self._revocations: set[asyncio.Task[None]] = set()
        self._paused = False

    def monotonic(self) -> float:
        """The clock leadership is judged on."""
        return self._monotonic()

    @property
    def me(self) -> MasterInfo:
        return self._me

    def is_leader(self) -> bool:
        return self.leadership.acting(self._monotonic()) and not self._paused

    def leader(self) -> MasterInfo | None:
        """The leader as last seen (this master when it leads), or None when there is none."""
        return self._me if self.is_leader() else self._leader

    async def run(self) -> None:
        try:
            while True:
                await self.step()
                leading = self.leadership.role == "leader"
                await asyncio.sleep(TICK_S if leading else FOLLOWER_TICK_S)
        finally:
            if self.leadership.role == "leader":
                await self._step_down("stopping")
            await self._resign()
            # A graceful stop hands over at once: the leader key goes with its lease.
            await self.settled()
            self._threads.shutdown(wait=False)

    async def _call(self, fn: Callable[..., T], *args: Any) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._threads, fn, *args)

    async def settled(self) -> None:
        """Wait for the revocations under way (tests; a graceful stop waits for them too)."""
        if self._revocations:
            await asyncio.wait(self._revocations, timeout=2.0)

    # -- one step ---------------------------------------------------------------------

    async def step(self) -> None:
        """One round: renew when due, then lead (check the key and the deadline) or campaign.
        etcd failing is no error here: the deadline decides when a leader must stop."""
        try:
            await self._tick()
        except StoreError as e:
            log.warning("leader election: %s", e)
            await self._check_deadline()

    async def _tick(self) -> None:
        if self._store.in_doubt and self.leadership.role == "leader" and not self._paused:
            await self._pause("a write's outcome is unknown: memory is reloaded from etcd")
        if self._lease == 0:
            await self._new_lease()
        now = self._monotonic()
        if now >= self._next_renewal:
            await self._renew()
        if self.leadership.role == "leader":
            await self._check_key()
            await self._check_deadline()
            if self._store.in_doubt:
                # Raises StoreError while etcd cannot take a write: it stays paused. The
                # resume below reloads memory, the unknown write included if committed.
                await self._call(self._store.settle)
            if self._paused and self.leadership.acting(self._monotonic()):
                await self._resume()  # renewed this tick, and the key is still its own
        else:
            await self._campaign()

    async def _new_lease(self) -> None:
        sent = self._monotonic()
        asked = max(1, round(self.leadership.timing.ttl))
        self._lease, granted = await self._call(self._etcd.grant, asked)
        if granted > asked and not self._warned_ttl:
            self._warned_ttl = True
            log.warning(
                "leader election: etcd granted a %ds lease for the %ds asked (its minimum TTL "
                "is 1.5 x its --election-timeout), so a failover takes up to %ds more; run "
                "etcd with --heartbeat-interval 50 --election-timeout 500",
                granted,
                asked,
                granted - asked,
            )
        self._lease_sent_at = sent
        self._next_renewal = sent + self.leadership.timing.renew_every
        await self._call(self._etcd.put_on_lease, self.member_key, self._me.encode(), self._lease)

    async def _renew(self) -> None:
        sent = self._monotonic()
        timing = self.leadership.timing
        budget = timing.renew_every
        if self._paused:
            # Its lease may live a whole TTL past its last confirmed renewal (longer if etcd
            # changed Raft leaders, which extends every lease): an answer that slow still
            # proves it alive. Cancelling sooner, under load, kept a leader paused for good.
            budget = timing.ttl
        elif self.leadership.role == "leader":
            # A late answer still extends the reign (from when it was sent): wait for it as
            # long as it can help rather than give up and send another.
            budget = max(0.05, self.leadership.deadline - sent)
        self._next_renewal = sent + timing.renew_every
        ttl = await self._call(self._etcd.keepalive, self._lease, budget)
        if ttl <= 0:
            log.warning("leader election: lease %x expired", self._lease)
            self._lease = 0
            if self.leadership.role == "leader":
                await self._step_down("its lease expired")
            return
        self._lease_sent_at = sent
        self.leadership.renewed(sent)

    async def _campaign(self) -> None:
        current = await self._call(self._etcd.held, self.leader_key)
        if current.create_revision:
            self._leader = MasterInfo.decode(current.value)
            if self._leader is not None and self._leader.name == self._me.name:
                # Mine from before a restart or a deposition: it expires with that lease.
                self._leader = None
            return
        sent_at = self._lease_sent_at
        timing = self.leadership.timing
        if self._monotonic() >= sent_at + timing.ttl - timing.margin:
            return  # the lease is not known to be alive long enough to lead on it
        won, holder = await self._call(
            self._etcd.take_vacant, self.leader_key, self._me.encode(), self._lease
        )
        if not won:
            self._leader = MasterInfo.decode(holder.value) if holder.create_revision else None
            return
        self._my_create_revision = holder.create_revision
        self._store.set_guard([holds(self.leader_key, holder.create_revision)])
        self.leadership.won(sent_at)
        self._leader = self._me
        log.info(
            "leader election: %s is the leader (revision %d)",
            self._me.name,
            holder.create_revision,
        )
        try:
            await self._on_elected()
        except Exception:
            log.exception("leader election: taking over failed; stepping down")
            await self._step_down("taking over failed")
            await self._resign()

    async def _check_key(self) -> None:
        current = await self._call(self._etcd.held, self.leader_key)
        if current.create_revision != self._my_create_revision:
            self._leader = MasterInfo.decode(current.value) if current.create_revision else None
            await self._step_down("the leader key is no longer mine")

    async def _check_deadline(self) -> None:
        if self._paused or self.leadership.role != "leader":
            return
        if not self.leadership.acting(self._monotonic()):
            await self._pause()

    @property
    def paused(self) -> bool:
        """Leading by its key, but not acting: its lease is not confirmed alive right now.
        That starts the moment its deadline passes, not at the tick that notices (a tick
        may be waiting on etcd for a while): in that gap a write must wait for the lease
        as it does in a pause, not be refused as if no master led."""
        return self._paused or (
            self.leadership.role == "leader" and not self.leadership.acting(self._monotonic())
        )

    async def _pause(self, why: str = "its lease could not be renewed in time") -> None:
        """No renewal confirmed in time (etcd electing a new leader of its own, a stalled
        loop): stop acting as a step-down does, but keep the lease and the key. Renewals go
        on; if etcd still accepts one, the lease never lapsed and no other master could have
        led, so this one resumes (no election, nothing visible beyond writes waiting); if
        etcd says the lease expired, or the key is another's, it steps down."""
        log.warning("leader election: %s pauses: %s", self._me.name, why)
        self._paused = True
        self._store.set_guard([holds(self.leader_key, -1)])
        await self._on_deposed()

    async def _resume(self) -> None:
        log.info("leader election: %s resumes: its lease was renewed in time", self._me.name)
        self._paused = False
        self._store.set_guard([holds(self.leader_key, self._my_create_revision)])
        try:
            await self._on_elected()
        except Exception:
            log.exception("leader election: resuming failed; stepping down")
            await self._step_down("resuming failed")

    async def _step_down(self, why: str) -> None:
        """Fence writes, stop the controllers, and only then let the key go: while this
        master's lease lives no other can lead, so its controllers are stopped before
        another's can start (revoking first let two leaders' controllers run at once)."""
        log.warning("leader election: %s stops leading: %s", self._me.name, why)
        paused, self._paused = self._paused, False
        self.leadership.lost()
        self._store.set_guard([holds(self.leader_key, -1)])  # no write may pass any more
        if self._leader == self._me:
            self._leader = None
        try:
            if not paused:  # a pause has stopped them already
                await self._on_deposed()
        finally:
            # The leader key lives on this lease: never renew it again (and revoke it when
            # etcd answers), or a follower's renewals would keep a leader key nobody uses.
            self._abandon_lease()

    def _abandon_lease(self) -> None:
        lease, self._lease = self._lease, 0
        if lease:
            task = asyncio.create_task(self._revoke(lease), name="revoke-lease")
            self._revocations.add(task)
            task.add_done_callback(self._revocations.discard)

    async def _resign(self) -> None:
        """Give the key up at once (a graceful stop) instead of letting the lease run out."""
        lease, self._lease = self._lease, 0
        if lease:
            await self._revoke(lease)

    async def _revoke(self, lease: int) -> None:
        try:
            await self._call(self._etcd.revoke, lease)
        except StoreError as e:
            log.info("leader election: could not revoke lease %x (it expires): %s", lease, e)
        else:
            log.info("leader election: lease %x revoked", lease)
