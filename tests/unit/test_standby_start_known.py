"""A standby holder is joinable from the moment its start returned, before the inspect that
follows it (DockerRuntime._standby_started): the recovery bench's `--kill-at standby-made`
found a crash 0.1-0.2 s after the standby's start event, while that inspect was still at
the engine, started again in place (standby_of said none yet). A fake engine: the inspect
of the new holder blocks until released, and the runtime is asked meanwhile."""

from __future__ import annotations

import asyncio
import threading
import time
from typing import Any

import docker

from agent.containers import container_config
from agent.model import ContainerPort, ContainerSpec, PodAssignment, PodSpec
from agent.runtime.docker_runtime import DockerRuntime
from agent.runtime.port import ContainerInfo
from tests.support import FakeEngineClient

POD = PodAssignment(
    "web-1", 3, PodSpec((ContainerSpec("web", "nginx:latest", ports=(ContainerPort(80),)),))
)
CID = "c" * 64
HOLDER = "h" * 64


class Api:
    """An engine where the standby holder's create and start go through and its inspect
    waits until released."""

    def __init__(self) -> None:
        self.started: list[str] = []
        self.inspecting = threading.Event()
        self.release = threading.Event()
        self.labels: dict[str, str] = {}

    def inspect_container(self, container_id: str) -> dict[str, Any]:
        if container_id != HOLDER:
            raise docker.errors.NotFound("no such container")
        self.inspecting.set()
        assert self.release.wait(30), "never released"
        return {
            "Id": HOLDER,
            "Name": "/standby",
            "Config": {"Image": "pause", "Labels": self.labels},
            "State": {"Status": "running", "Running": True},
            "HostConfig": {"NetworkMode": "bridge"},
            "NetworkSettings": {},
        }

    def create_container(self, *args: Any, **kwargs: Any) -> dict[str, str]:
        self.labels = dict(kwargs.get("labels") or {})
        return {"Id": HOLDER}

    def create_host_config(self, **kwargs: Any) -> dict[str, Any]:
        return dict(kwargs)

    def start(self, container_id: str) -> None:
        self.started.append(container_id)


def test_a_standby_is_known_once_its_start_returned_before_its_inspect() -> None:
    api = Api()
    runtime = DockerRuntime(
        "n1", client_factory=lambda: FakeEngineClient(api), reach_own_ip=False, standby=True
    )
    config = container_config("n1", "127.0.0.1", POD, POD.spec.containers[0], 0)
    runtime._standby_wanted["web-1"] = (CID, config, time.monotonic())
    runtime._quiet_since = time.monotonic() - 60
    # The pod's running container, as the last listing (before the standby) showed it.
    app = ContainerInfo(CID, config.name, "nginx:latest", "running", dict(config.labels))
    making = threading.Thread(target=runtime._make_standbys_sync)
    making.start()
    try:
        assert api.inspecting.wait(30), "the standby's inspect never came"
        assert api.started == [HOLDER]
        # Its start returned; its inspect is still at the engine: a crash now joins it.
        assert runtime.standby_of(app) == HOLDER
        assert runtime._usable_standby(config) == HOLDER
    finally:
        api.release.set()
        making.join(30)
        asyncio.run(runtime.close())
    # Inspected: known as inspected, no longer as started.
    assert runtime.standby_of(app) == HOLDER
    assert runtime._standbys_started == {}


class StartHeld(Api):
    """The engine's start of the standby holder waits until released (its inspect does not)."""

    def __init__(self) -> None:
        super().__init__()
        self.release.set()
        self.starting = threading.Event()
        self.release_start = threading.Event()

    def start(self, container_id: str) -> None:
        self.starting.set()
        assert self.release_start.wait(30), "never released"
        super().start(container_id)


def test_a_crash_restart_waits_for_the_start_of_a_standby_being_made() -> None:
    """A crash between the standby holder's create and its start's return: standby_soon
    waits for that start and names the holder (standby_of, asked then, says none)."""
    api = StartHeld()
    runtime = DockerRuntime(
        "n1", client_factory=lambda: FakeEngineClient(api), reach_own_ip=False, standby=True
    )
    runtime.standby_wait = 30.0
    config = container_config("n1", "127.0.0.1", POD, POD.spec.containers[0], 0)
    runtime._standby_wanted["web-1"] = (CID, config, time.monotonic())
    runtime._quiet_since = time.monotonic() - 60
    app = ContainerInfo(CID, config.name, "nginx:latest", "running", dict(config.labels))
    other = ContainerInfo("o" * 64, "other", "nginx:latest", "running", {"pinnace.pod": "other"})

    async def crash_meanwhile() -> tuple[str, str, str]:
        loop = asyncio.get_running_loop()
        making = loop.run_in_executor(None, runtime._make_standbys_sync)
        assert await loop.run_in_executor(None, api.starting.wait, 30), "no start came"
        before = runtime.standby_of(app)
        asked = asyncio.ensure_future(runtime.standby_soon(app))
        for _ in range(20):
            await asyncio.sleep(0)
        assert not asked.done()  # waiting for the holder's start
        # Another pod's crash does not wait for this pod's standby.
        elsewhere = await asyncio.wait_for(runtime.standby_soon(other), 5)
        api.release_start.set()
        found = await asyncio.wait_for(asked, 30)
        await making
        return before, found, elsewhere

    try:
        before, found, elsewhere = asyncio.run(crash_meanwhile())
    finally:
        api.release_start.set()
        asyncio.run(runtime.close())
    assert (before, found, elsewhere) == ("", HOLDER, "")
    assert runtime._standbys_making == {}
