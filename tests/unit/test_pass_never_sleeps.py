"""A controller pass gives the loop a turn between its steps and never sleeps there: no wait
for the agents' streams to be read (read_pause.py, dropped; issue 15).

Built when the master read no stream through a pass, it waited between steps while no
heartbeat was read. The cause was gRPC's wake-up socket (master/grpc_wakeups.py drains it);
since, the wait found the fleet's own quiet spells, not a starved read, and slept the pass
for up to 11.6 s of a 5,000-node apply's binding (tests/bench/README.md).
"""

from __future__ import annotations

import asyncio

import pytest

import master.controllers.manager as manager_module
from kernel.clock import FakeClock
from master.controllers.manager import ControllerManager
from master.controllers.nodes import LeaseTable
from master.state import ClusterState
from master.store import MemoryStore
from tests.unit.ready_nodes import add_ready_nodes, web_deployment


def test_a_pass_runs_its_steps_without_sleeping_while_no_heartbeat_is_read(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    async def run() -> int:
        clock = FakeClock()
        state = ClusterState(MemoryStore(), clock)
        leases = LeaseTable()
        manager = ControllerManager(state, clock, leases)
        # The fleet's beats read at 125 a second for 4 s, then none for 0.2 s (25 beats'
        # worth: what the old wait took for a starved read), the loop's thread busy.
        for i in range(500):
            clock.advance(1 / 125)
            now = clock.now()
            manager.read_backlog.observe(f"n{i % 3}", now - 0.01, now, clock.monotonic())
        clock.advance(0.2)
        add_ready_nodes(state, leases, clock, 3)
        busy = [0.0]

        def cpu() -> float:
            busy[0] += 1.0
            return busy[0]

        setattr(manager, "_cpu_clock", cpu)  # noqa: B010 (the old wait's idle check: never idle)

        def step_over(started: float, now: float) -> bool:
            clock.advance(0.02)  # each step held the loop 20 ms: the pass owes a rest
            return True

        monkeypatch.setattr(manager_module, "step_over", step_over)
        loop = asyncio.create_task(manager.run())
        state.put(web_deployment(6))
        # Turns of the loop only, the clock never moved: a pass that slept would stop here.
        for _ in range(2000):
            await asyncio.sleep(0)
            if sum(1 for p in state.pods() if p.node_name) == 6:
                break
        bound = sum(1 for p in state.pods() if p.node_name)
        loop.cancel()
        await asyncio.gather(loop, return_exceptions=True)
        return bound

    assert asyncio.run(run()) == 6
