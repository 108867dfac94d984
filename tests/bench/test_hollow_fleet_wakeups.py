"""The hollow fleet drains gRPC's wake-up socket as the master does (master/grpc_wakeups.py):
its 1,250 sessions a process share one loop, and an undrained busy loop reads one
completion a turn, so the bench would time its own fleet's backlog."""

from __future__ import annotations

import asyncio

import grpc

from master import grpc_wakeups
from tests.bench.hollow_fleet import _drained_wakeups


def _readers(loop: asyncio.AbstractEventLoop) -> list[object]:
    selector = loop._selector  # type: ignore[attr-defined]
    callbacks = []
    for key in selector.get_map().values():
        handle = key.data[0] if isinstance(key.data, tuple) else None
        callbacks.append(getattr(handle, "_callback", None))
    return callbacks


def test_the_fleets_loop_reads_grpcs_wakeups_through_the_drain() -> None:
    async def run() -> list[object]:
        anchor = _drained_wakeups()
        try:
            # A channel made and dropped meanwhile, as a join's is, leaves the drain on.
            await grpc.aio.insecure_channel("127.0.0.1:1").close()
            return _readers(asyncio.get_running_loop())
        finally:
            await anchor.close()

    assert grpc_wakeups._drained in asyncio.run(run())
