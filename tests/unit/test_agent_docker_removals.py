"""DockerRuntime sends one removal of a container at a time: a second removal asked while the
first is in flight (the sweep's and the worker's, on two engine threads) waits for it instead
of reaching the engine. And a rename of a container never meets a removal of it at the
engine: the two together left a ghost "Removal In Progress" until dockerd was restarted
(test_pod_sandbox_cluster.py, twice; agent/runtime/keyed_lock.py has the measurement)."""

from __future__ import annotations

import asyncio
import threading
from typing import Any

from agent.runtime.docker_runtime import DockerRuntime
from agent.runtime.port import LABEL_NODE
from tests.support import FakeEngineClient, until_async


class Api:
    """An engine whose removals block until released, recording each one it is sent."""

    def __init__(self) -> None:
        self.removals: list[str] = []
        self.release = threading.Event()
        self._lock = threading.Lock()
        self.calls: list[str] = []
        self.in_flight: list[str] = []
        self.met = False

    def inspect_container(self, container_id: str) -> dict[str, Any]:
        return {
            "Id": container_id,
            "Name": "/pinnace-node-1-web-1-web",
            "Config": {"Image": "web:1", "Labels": {LABEL_NODE: "node-1"}},
            "State": {"Status": "exited", "Running": False},
            "NetworkSettings": {},
        }

    def remove_container(self, container_id: str, force: bool) -> None:
        self.removals.append(container_id)
        self._engine_call(f"remove {container_id}")

    def rename(self, container_id: str, name: str) -> None:
        self._engine_call(f"rename {container_id}")

    def _engine_call(self, call: str) -> None:
        """Blocks until released; records the call and whether it met one of the same
        container at the engine."""
        container = call.split()[1]
        with self._lock:
            self.met |= any(c.split()[1] == container for c in self.in_flight)
            self.in_flight.append(call)
            self.calls.append(call)
        try:
            assert self.release.wait(30), "never released"
        finally:
            with self._lock:
                self.in_flight.remove(call)


def test_two_removals_of_one_container_asked_together_reach_the_engine_once() -> None:
    api = Api()
    runtime = DockerRuntime(
        "node-1", client_factory=lambda: FakeEngineClient(api), reach_own_ip=False
    )

    async def scenario() -> None:
        try:
            first = asyncio.create_task(runtime.remove("c1"))
            await until_async(lambda: api.removals == ["c1"], "the first removal at the engine")
            second = asyncio.create_task(runtime.remove("c1"))
            # The second waits for the first (or, as before, reaches the engine itself).
            await until_async(
                lambda: runtime._removals.waiting == 1 or len(api.removals) == 2,
                "the second removal asked",
            )
            api.release.set()
            await asyncio.gather(first, second)
        finally:
            api.release.set()
            await runtime.close()

    asyncio.run(scenario())
    assert api.removals == ["c1"]


def _rename_meets_removal(rename_first: bool) -> tuple[list[str], bool]:
    """A restarted container's rename (on an engine thread) and a removal of it asked
    together, the first one sent held at the engine until the second was asked."""
    api = Api()
    runtime = DockerRuntime(
        "node-1", client_factory=lambda: FakeEngineClient(api), reach_own_ip=False
    )

    async def scenario() -> None:
        loop = asyncio.get_running_loop()
        first: asyncio.Future[None]
        second: asyncio.Future[None]
        try:
            if rename_first:
                first = loop.run_in_executor(None, runtime._mark_restarted, "c1", "web-r1")
            else:
                first = asyncio.ensure_future(runtime.remove("c1"))
            await until_async(lambda: len(api.calls) == 1, "the first call at the engine")
            if rename_first:
                second = asyncio.ensure_future(runtime.remove("c1"))
            else:
                second = loop.run_in_executor(None, runtime._mark_restarted, "c1", "web-r1")
            # The second waits for the container (or, as before, reaches the engine).
            await until_async(
                lambda: runtime._renames_and_removals.users("c1") == 2 or len(api.calls) == 2,
                "the second call asked",
            )
            api.release.set()
            await asyncio.gather(first, second)
        finally:
            api.release.set()
            await runtime.close()

    asyncio.run(scenario())
    return api.calls, api.met


def test_a_removal_asked_during_a_rename_waits_for_it() -> None:
    calls, met = _rename_meets_removal(rename_first=True)
    assert calls == ["rename c1", "remove c1"]
    assert not met


def test_a_rename_asked_during_a_removal_waits_for_it() -> None:
    calls, met = _rename_meets_removal(rename_first=False)
    assert calls == ["remove c1", "rename c1"]
    assert not met
