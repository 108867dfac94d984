"""Settler: runs a single master's controllers on etcd, and pauses them while a write is in doubt.

`pinnace master --store etcd` without --leader-elect has no elector to pause it
when etcd neither confirms nor refuses a write (master/doubt.py says why that
matters and decides every step). This edge only executes: every POLL_S it asks
Doubt what to do with the store's `in_doubt`, then closes or opens the write gate
(ClusterState.set_write_gate: commits wait for the resume, then are refused;
flushes are held, so nothing stale in memory overwrites what etcd holds), stops or
starts the controllers, calls EtcdStore.settle on a thread, and reloads memory
through ClusterState.reload, which tells every listener (controllers, watches,
the load balancer) of each object that changed.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Protocol

from kernel.clock import Clock
from master.doubt import Doubt
from master.state import ClusterState
from master.store.port import StoreError

log = logging.getLogger(__name__)

# How soon an unknown write is noticed (a commit meanwhile is refused by the gate once
# noticed; before, the store's own failure already answered it).
POLL_S = 0.05


class DoubtfulStore(Protocol):
    """The store that can be in doubt (master/store/etcd.EtcdStore)."""

    in_doubt: bool

    def settle(self) -> None: ...


class Controllers(Protocol):
    """What the settler stops and starts (master/controllers/manager.ControllerManager)."""

    def start_grace(self) -> None: ...
    async def run(self) -> None: ...


class Settler:
    def __init__(
        self,
        store: DoubtfulStore,
        state: ClusterState,
        manager: Controllers,
        clock: Clock,
    ) -> None:
        self._store = store
        self._state = state
        self._manager = manager
        self._clock = clock
        self.doubt = Doubt()
        self._controllers: asyncio.Task[None] | None = None
        state.set_write_gate(self.refusal, settling=lambda: self.doubt.paused)

    def refusal(self) -> str | None:
        return self.doubt.refusal(self._clock.monotonic())

    async def run(self) -> None:
        self._controllers = asyncio.create_task(self._manager.run(), name="controllers")
        try:
            while True:
                await self.step()
                await self._clock.sleep(POLL_S)
        finally:
            await self._stop_controllers()

    async def step(self) -> None:
        step = self.doubt.next(self._clock.monotonic(), self._store.in_doubt)
        if step == "pause":
            log.warning(
                "a write's outcome is unknown: writes and controllers pause until etcd "
                "settles it and memory is reloaded from etcd"
            )
            await self._stop_controllers()
        elif step == "settle":
            try:
                await asyncio.to_thread(self._store.settle)
            except StoreError as e:
                self.doubt.failed(self._clock.monotonic(), str(e))
            else:
                self.doubt.settled(self._clock.monotonic())
        elif step == "reload":
            try:
                await self._state.reload()
            except StoreError as e:
                self.doubt.failed(self._clock.monotonic(), str(e))
            else:
                self.doubt.reloaded(self._clock.monotonic())
        elif step == "resume":
            self.doubt.resumed()
            self._resume_controllers()
            log.info("etcd settled the unknown write and memory was reloaded: writes resume")

    def _resume_controllers(self) -> None:
        # Nodes kept their sessions, but their reports meanwhile were not stored: one
        # fresh lease each before any is judged, as a leader gives them when it resumes.
        self._manager.start_grace()
        self._controllers = asyncio.create_task(self._manager.run(), name="controllers")

    async def _stop_controllers(self) -> None:
        task, self._controllers = self._controllers, None
        if task is None:
            return
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
