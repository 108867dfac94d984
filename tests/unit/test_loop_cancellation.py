"""The master's loops stop when cancelled, even when the cancel lands as their wake-up event is
set (Python 3.11's asyncio.wait_for swallowed exactly that cancel, and a SIGTERMed master hung
with its load-balancer loop running on). The race is made deterministic: the event is set and
the task cancelled in the same turn of the loop, before either runs."""

from __future__ import annotations

import asyncio

from kernel.clock import FakeClock
from master.controllers.manager import ControllerManager
from master.controllers.nodes import LeaseTable
from master.state import ClusterState
from master.store.memory import MemoryStore


def test_the_controller_loop_stops_on_a_cancel_that_races_a_wake_up() -> None:
    async def scenario() -> bool:
        clock = FakeClock()
        manager = ControllerManager(ClusterState(MemoryStore(), clock), clock, LeaseTable())
        task = asyncio.create_task(manager.run())
        for _ in range(3):
            await asyncio.sleep(0)  # into its wait for a wake-up
        manager.poke()
        task.cancel()
        done, _ = await asyncio.wait({task}, timeout=2.0)
        if not done:
            task.cancel()  # a second cancel reaches it; the test has already failed
        return bool(done)

    assert asyncio.run(scenario()), "the controller loop swallowed its cancellation"
