"""DockerRuntime sends one removal of a container at a time: a second removal asked while the
first is in flight (the sweep's and the worker's, on two engine threads) waits for it instead
of reaching the engine. And a rename of a container never meets a removal of it at the
engine: the two together left a ghost "Removal In Progress" until dockerd was restarted
(test_pod_sandbox_cluster.py, twice; agent/runtime/keyed_lock.py has the measurement)."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
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


Call = Callable[[DockerRuntime], "asyncio.Future[None]"]


def _remove(runtime: DockerRuntime) -> asyncio.Future[None]:
    return asyncio.ensure_future(runtime.remove("c1"))


def _rename(runtime: DockerRuntime) -> asyncio.Future[None]:
    """A restarted container's rename, on an engine thread as the runtime sends it."""
    loop = asyncio.get_running_loop()
    return loop.run_in_executor(None, runtime._mark_restarted, "c1", "web-r1")


def _asked_together(
    first: Call, second: Call, second_asked: Callable[[DockerRuntime], bool]
) -> Api:
    """`first` sent and held at the engine; `second` asked meanwhile, until
    `second_asked(runtime)` (it waits for the first) or it reached the engine too; then the
    engine answers both. The engine, with what it was sent."""
    api = Api()
    runtime = DockerRuntime(
        "node-1", client_factory=lambda: FakeEngineClient(api), reach_own_ip=False
    )

    async def scenario() -> None:
        try:
            one = first(runtime)
            await until_async(lambda: len(api.calls) == 1, "the first call at the engine")
            two = second(runtime)
            await until_async(
                lambda: second_asked(runtime) or len(api.calls) == 2, "the second call asked"
            )
            api.release.set()
            await asyncio.gather(one, two)
        finally:
            api.release.set()
            await runtime.close()

    asyncio.run(scenario())
    return api


def test_two_removals_of_one_container_asked_together_reach_the_engine_once() -> None:
    api = _asked_together(_remove, _remove, lambda runtime: runtime._removals.waiting == 1)
    assert api.removals == ["c1"]


def _rename_meets_removal(rename_first: bool) -> tuple[list[str], bool]:
    """A rename and a removal of one container asked together, in either order."""
    first, second = (_rename, _remove) if rename_first else (_remove, _rename)
    api = _asked_together(
        first, second, lambda runtime: runtime._renames_and_removals.users("c1") == 2
    )
    return api.calls, api.met


def test_a_removal_asked_during_a_rename_waits_for_it() -> None:
    calls, met = _rename_meets_removal(rename_first=True)
    assert calls == ["rename c1", "remove c1"]
    assert not met


def test_a_rename_asked_during_a_removal_waits_for_it() -> None:
    calls, met = _rename_meets_removal(rename_first=False)
    assert calls == ["remove c1", "rename c1"]
    assert not met
