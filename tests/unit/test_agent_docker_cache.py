"""DockerRuntime's listing reuses the inspect made at a container's start: the list that
follows a pod's task asks the engine nothing more about a container it just started (one
engine call less per container in a burst of starts), and inspects again once the engine
lists it in another state. A list taken while a start is under way describes that container
from its list entry (agent/runtime/summaries.py): an inspect would wait for the start."""

from __future__ import annotations

import asyncio
import threading
from typing import Any

from agent.runtime.docker_runtime import DockerRuntime
from agent.runtime.port import LABEL_NODE, ContainerConfig, ContainerInfo
from tests.support import FakeEngineClient


class Api:
    """Just enough of the engine for a create, a start and a list."""

    def __init__(self) -> None:
        self.state = "running"
        self.inspected: list[str] = []
        self.labels: dict[str, str] = {}

    def create_host_config(self, **kwargs: Any) -> dict[str, Any]:
        return {}

    def create_container(self, **kwargs: Any) -> dict[str, str]:
        self.labels = dict(kwargs["labels"])
        return {"Id": "c1"}

    def start(self, container_id: str) -> None:
        pass

    def inspect_container(self, container_id: str) -> dict[str, Any]:
        self.inspected.append(container_id)
        return {
            "Id": container_id,
            "Name": "/pinnace-node-1-web-1-web",
            "Config": {"Image": "web:1", "Labels": self.labels},
            "State": {"Status": self.state, "Running": self.state == "running"},
            "NetworkSettings": {},
        }

    def containers(self, all: bool, filters: dict[str, Any]) -> list[dict[str, Any]]:
        return [{"Id": "c1", "State": self.state}]


def test_the_list_after_a_start_uses_the_start_s_inspect_until_the_state_changes() -> None:
    api = Api()
    runtime = DockerRuntime(
        "node-1", client_factory=lambda: FakeEngineClient(api), reach_own_ip=False
    )
    config = ContainerConfig(
        name="pinnace-node-1-web-1-web", image="web:1", labels={LABEL_NODE: "node-1"}
    )

    async def scenario() -> tuple[list[str], list[str]]:
        try:
            started = await runtime.create_and_start(config)
            listed = await runtime.list_containers()
            assert [c.id for c in listed] == [started.id]
            after_start = list(api.inspected)
            api.state = "exited"
            relisted = await runtime.list_containers()
            assert [c.state for c in relisted] == ["exited"]
            return after_start, list(api.inspected)
        finally:
            await runtime.close()

    after_start, after_exit = asyncio.run(scenario())

    assert after_start == ["c1"]  # the start's own inspect, none by the list
    assert after_exit == ["c1", "c1"]  # a new state is inspected again


class StartingApi(Api):
    """An engine whose start of the container holds until the test lets it end, and which
    lists it as created meanwhile (the engine answers an inspect of a container only once its
    start is done: the fake counts the inspects instead of waiting)."""

    def __init__(self) -> None:
        super().__init__()
        self.state = "created"
        self.starting = threading.Event()
        self.let_start = threading.Event()

    def start(self, container_id: str) -> None:
        self.starting.set()
        assert self.let_start.wait(10), "the test never let the start end"
        self.state = "running"

    def containers(self, all: bool, filters: dict[str, Any]) -> list[dict[str, Any]]:
        return [
            {
                "Id": "c1",
                "Names": ["/pinnace-node-1-web-1-web"],
                "Image": "web:1",
                "State": self.state,
                "Labels": self.labels,
                "HostConfig": {"NetworkMode": "bridge"},
            }
        ]


def test_a_list_during_a_start_describes_the_container_from_its_entry_without_an_inspect() -> None:
    api = StartingApi()
    runtime = DockerRuntime(
        "node-1", client_factory=lambda: FakeEngineClient(api), reach_own_ip=False
    )
    config = ContainerConfig(
        name="pinnace-node-1-web-1-web",
        image="web:1",
        labels={LABEL_NODE: "node-1", "pinnace.pod": "web-1", "pinnace.container": "web"},
    )

    async def scenario() -> tuple[list[ContainerInfo], list[str], list[ContainerInfo]]:
        try:
            start = asyncio.create_task(runtime.create_and_start(config))
            assert await asyncio.to_thread(api.starting.wait, 10)
            during = await runtime.list_containers()
            inspected_during = list(api.inspected)
            api.let_start.set()
            await start
            return during, inspected_during, await runtime.list_containers()
        finally:
            api.let_start.set()
            await runtime.close()

    during, inspected_during, after = asyncio.run(scenario())

    assert inspected_during == []  # no inspect waiting for the start
    (listed,) = during
    assert (listed.id, listed.name, listed.state, listed.pod, listed.container) == (
        "c1",
        "pinnace-node-1-web-1-web",
        "created",
        "web-1",
        "web",
    )
    assert (listed.ports, listed.pid, listed.started_at) == ({}, 0, 0.0)
    # Once started, the start's own inspect describes it (and is the only one).
    assert [(c.id, c.state) for c in after] == [("c1", "running")]
    assert api.inspected == ["c1"]


def test_a_created_container_no_start_here_is_making_is_still_inspected() -> None:
    api = StartingApi()
    api.labels = {LABEL_NODE: "node-1"}
    runtime = DockerRuntime(
        "node-1", client_factory=lambda: FakeEngineClient(api), reach_own_ip=False
    )

    async def scenario() -> list[ContainerInfo]:
        try:
            return await runtime.list_containers()
        finally:
            await runtime.close()

    (listed,) = asyncio.run(scenario())

    assert listed.state == "created"
    assert api.inspected == ["c1"]  # left by an earlier agent, say: the engine's full word
