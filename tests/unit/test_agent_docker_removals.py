"""DockerRuntime sends one removal of a container at a time: a second removal asked while the
first is in flight (the sweep's and the worker's, on two engine threads) waits for it instead
of reaching the engine. Two force-removals of one container racing in dockerd left a
container "Removal In Progress" until the engine was restarted (test_pod_sandbox_cluster.py
under load)."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable
from typing import Any

from agent.runtime.docker_runtime import DockerRuntime
from agent.runtime.port import LABEL_NODE


class Api:
    """An engine whose removals block until released, recording each one it is sent."""

    def __init__(self) -> None:
        self.removals: list[str] = []
        self.release = threading.Event()

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
        assert self.release.wait(30), "never released"


class Client:
    def __init__(self, api: Api) -> None:
        self.api = api

    def close(self) -> None:
        pass


async def _until(predicate: Callable[[], bool], what: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.001)


def test_two_removals_of_one_container_asked_together_reach_the_engine_once() -> None:
    api = Api()
    runtime = DockerRuntime("node-1", client_factory=lambda: Client(api), reach_own_ip=False)

    async def scenario() -> None:
        try:
            first = asyncio.create_task(runtime.remove("c1"))
            await _until(lambda: api.removals == ["c1"], "the first removal at the engine")
            second = asyncio.create_task(runtime.remove("c1"))
            # The second waits for the first (or, as before, reaches the engine itself).
            await _until(
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
