"""DockerRuntime's listing reuses the inspect made at a container's start: the list that
follows a pod's task asks the engine nothing more about a container it just started (one
engine call less per container in a burst of starts), and inspects again once the engine
lists it in another state."""

from __future__ import annotations

import asyncio
from typing import Any

from agent.runtime.docker_runtime import DockerRuntime
from agent.runtime.port import LABEL_NODE, ContainerConfig


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


class Client:
    def __init__(self, api: Api) -> None:
        self.api = api

    def close(self) -> None:
        pass


def test_the_list_after_a_start_uses_the_start_s_inspect_until_the_state_changes() -> None:
    api = Api()
    runtime = DockerRuntime("node-1", client_factory=lambda: Client(api), reach_own_ip=False)
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
