"""HaRole: what a master does as leader or follower (`pinnace master --leader-elect`).

The leader runs the controllers (deployments, scheduler, node leases) and is
the only master whose writes the store lets through (its guard). A follower
runs none of them: it mirrors etcd into memory (Follower) so it serves reads,
and refuses writes with one sentence naming the leader, so a client with
several masters (`--master a,b,c`) sends them there.

Taking over: reload memory from etcd (everything the old leader committed is
there; the revisions the store compares against become current), give every
node one fresh lease before judging it (a failover is not a node failure),
then start the controllers. Being deposed: stop the controllers first, then
mirror again, starting with a reload (memory may hold changes etcd refused).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from master.controllers.manager import ControllerManager
from master.ha.elector import LeaderElector, MasterInfo
from master.ha.follower import Follower
from master.ha.leadership import LeaseTiming
from master.state import ClusterState
from master.store.etcd import EtcdStore
from master.store.etcd_lease import EtcdLeases

log = logging.getLogger(__name__)


class HaRole:
    def __init__(
        self,
        store: EtcdStore,
        state: ClusterState,
        manager: ControllerManager,
        me: MasterInfo,
        timing: LeaseTiming | None = None,
        follower: Follower | None = None,
    ) -> None:
        self._state = state
        self._manager = manager
        self._follower = follower or Follower(store, state)
        self.elector = LeaderElector(
            store,
            EtcdLeases(store.client),
            me,
            timing or LeaseTiming(),
            self._elected,
            self._deposed,
        )
        self._controllers: asyncio.Task[None] | None = None
        self._mirror: asyncio.Task[None] | None = None
        self._ready = False  # elected and caught up: only then are writes let through
        state.set_write_gate(self.refusal, self.leader_address, self.leader_api_url, self.settling)

    def refusal(self) -> str | None:
        """None while this master leads, else why it may not write (names the leader)."""
        if self.elector.is_leader():
            return None if self._ready else "this master is taking over as leader; retry"
        if self.elector.paused:
            return (
                f"the leader {self.elector.me.name} cannot confirm its etcd lease right now "
                "(is etcd reachable, with a quorum of its members?); retry in a moment"
            )
        leader = self.elector.leader()
        if leader is None or leader.name == self.elector.me.name:
            return "no master is the leader right now (is etcd reachable?); retry in a moment"
        return (
            f"master {self.elector.me.name} is a follower; the leader is {leader.name} "
            f"at {leader.address}: send writes there"
        )

    def settling(self) -> bool:
        """Leading, but not writing for a moment: taking over, or confirming its lease. A
        pause past two leases without a confirmed renewal is no longer a moment
        (Leadership.lapsed: another master most likely leads): writes are refused at once,
        and the agents' sessions end so that they find the leader (ClusterState.following).
        A master cut off from etcd kept them for as long as it was cut off, while the new
        leader showed their nodes NotReady."""
        if self.elector.paused:
            return not self.elector.leadership.lapsed(self.elector.monotonic())
        return self.elector.is_leader() and not self._ready

    def leader_address(self) -> str:
        leader = self.elector.leader()
        if leader is None or leader.name == self.elector.me.name:
            return ""
        return leader.address

    def leader_api_url(self) -> str:
        """The leader's Kubernetes API URL, where a follower forwards HTTP writes ("" if none)."""
        leader = self.elector.leader()
        if leader is None or leader.name == self.elector.me.name:
            return ""
        return leader.api_url

    async def run(self) -> None:
        self._mirror = asyncio.create_task(self._follower.run(), name="follower")
        try:
            await self.elector.run()
        finally:
            await _cancel(self._controllers)
            await _cancel(self._mirror)

    async def _elected(self) -> None:
        await _cancel(self._mirror)
        self._mirror = None
        await self._follower.resync()
        self._manager.start_grace()
        self._ready = True
        self._controllers = asyncio.create_task(self._manager.run(), name="controllers")
        log.info("leading: controllers started")

    async def _deposed(self) -> None:
        self._ready = False
        await _cancel(self._controllers)
        self._controllers = None
        if self._mirror is None:
            self._mirror = asyncio.create_task(
                self._follower.run(resync_first=True), name="follower"
            )
        log.info("following: controllers stopped")


async def _cancel(task: asyncio.Task[None] | None) -> None:
    if task is None:
        return
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
