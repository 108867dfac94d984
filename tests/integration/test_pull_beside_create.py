"""DockerRuntime on the real engine: a pod's container is created while its image step (the
pull) is still under way, and started only once that step succeeded (issue 15: the pull of
a `:latest` image, which fails here for want of a registry, used to come before the
create). Run with pods on the node's network and in sandboxes (--pod-sandbox) alike; every
container made carries a node name unique to the test and is removed by id."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Iterator
from typing import Any

import docker
import pytest

from agent.runtime.docker_runtime import DockerRuntime
from agent.runtime.port import (
    LABEL_CONTAINER,
    ContainerConfig,
    ImagePullError,
    PortBinding,
    container_name,
)
from tests.support import remove_container

pytestmark = pytest.mark.integration

IMAGE = "pinnace/httpd:latest"


@pytest.fixture(params=["node-network", "sandbox"])
def made(request: pytest.FixtureRequest, docker_client: docker.DockerClient) -> Iterator[Any]:
    node = f"pbc-{uuid.uuid4().hex[:8]}"
    runtime = DockerRuntime(node, pod_sandbox="all" if request.param == "sandbox" else "none")
    try:
        yield node, runtime
    finally:
        filters = {"label": f"pinnace.node={node}"}
        for c in docker_client.api.containers(all=True, filters=filters):
            remove_container(docker_client, c["Id"])


def config(node: str) -> ContainerConfig:
    return ContainerConfig(
        name=container_name(node, "p", "web"),
        image=IMAGE,
        labels={"pinnace.node": node, "pinnace.pod": "p", LABEL_CONTAINER: "web"},
        ports=(PortBinding(80, "TCP", 0),),
        host_ip="127.0.0.1",
    )


def app_states(client: docker.DockerClient, node: str) -> list[str]:
    """The states of the node's pod containers (a sandbox's holder is not one)."""
    filters = {"label": [f"pinnace.node={node}", LABEL_CONTAINER]}
    return [c["State"] for c in client.api.containers(all=True, filters=filters)]


async def until(what: str, check: Any, within: float = 30.0) -> None:
    deadline = time.monotonic() + within
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {within} s: {what}")
        await asyncio.sleep(0.02)


def test_the_container_is_created_during_the_pull_and_started_after_it(
    made: Any, docker_client: docker.DockerClient
) -> None:
    node, runtime = made

    async def scenario() -> None:
        pull: asyncio.Future[str] = asyncio.get_running_loop().create_future()
        start = asyncio.ensure_future(runtime.create_and_start(config(node), pull))
        try:
            await until("the container created", lambda: app_states(docker_client, node))
            assert app_states(docker_client, node) == ["created"]
            assert not start.done()
            pull.set_result("")
            info = await asyncio.wait_for(start, 30)
            assert info.state == "running"
            assert app_states(docker_client, node) == ["running"]
        finally:
            if not pull.done():
                pull.set_result("")
            await asyncio.gather(start, return_exceptions=True)
            await runtime.close()

    asyncio.run(scenario())


def test_a_failed_pull_fails_the_start_and_leaves_no_container_of_the_pod(
    made: Any, docker_client: docker.DockerClient
) -> None:
    node, runtime = made

    async def scenario() -> None:
        pull: asyncio.Future[str] = asyncio.get_running_loop().create_future()
        start = asyncio.ensure_future(runtime.create_and_start(config(node), pull))
        try:
            await until("the container created", lambda: app_states(docker_client, node))
            pull.set_exception(ImagePullError("cannot pull image: no such host"))
            with pytest.raises(ImagePullError, match="no such host"):
                await asyncio.wait_for(start, 30)
            assert app_states(docker_client, node) == []
        finally:
            await asyncio.gather(start, return_exceptions=True)
            await runtime.close()

    asyncio.run(scenario())


def test_a_latest_image_no_registry_serves_runs_from_the_node_s_image(
    made: Any, docker_client: docker.DockerClient
) -> None:
    # imagePullPolicy Always, as Kubernetes defaults a :latest tag: the pull is tried beside
    # the create, fails here (no registry), and the node's image runs.
    node, runtime = made

    async def scenario() -> None:
        try:
            pull = asyncio.ensure_future(runtime.ensure_image(IMAGE, "Always"))
            info = await asyncio.wait_for(runtime.create_and_start(config(node), pull), 60)
            assert info.state == "running"
            assert (await pull).endswith("using the image already on the node")
        finally:
            await runtime.close()

    asyncio.run(scenario())
