"""Supervision of the master's background tasks: a task that ends is the master's end."""

from __future__ import annotations

import asyncio

import pytest

from master.supervision import TaskDied, supervise


async def _forever() -> None:
    await asyncio.Event().wait()


async def _broken() -> None:
    await asyncio.sleep(0)
    raise RuntimeError("reconcile pass exploded")


async def _quits() -> None:
    await asyncio.sleep(0)


def test_a_task_that_raises_ends_supervision_with_its_name_and_cause() -> None:
    async def scenario() -> None:
        tasks = [
            asyncio.create_task(_forever(), name="flusher"),
            asyncio.create_task(_broken(), name="controllers"),
        ]
        try:
            await supervise(tasks, asyncio.Event())
        finally:
            tasks[0].cancel()

    with pytest.raises(TaskDied) as died:
        asyncio.run(scenario())

    assert died.value.name == "controllers"
    assert "the controllers task stopped (RuntimeError: reconcile pass exploded)" in str(died.value)


def test_a_task_that_returns_is_a_death_too_and_a_stop_is_not() -> None:
    async def returns() -> None:
        await supervise([asyncio.create_task(_quits(), name="load-balancer")], asyncio.Event())

    with pytest.raises(TaskDied, match="load-balancer task stopped \\(it returned\\)"):
        asyncio.run(returns())

    async def stopped() -> bool:
        stop = asyncio.Event()
        task = asyncio.create_task(_forever(), name="controllers")
        asyncio.get_running_loop().call_soon(stop.set)
        await supervise([task], stop)
        alive = not task.done()
        task.cancel()
        return alive

    assert asyncio.run(stopped())
