"""`pinnace agent --pod-network NAME` on the real Docker engine, driven by a fake master.

What the compose demo relies on: a pod is attached to the named network, publishes
nothing on the host, and is reported at its container IP on that network with its
container port, where it answers; a restarted agent adopts it with the same endpoint.
"""

from __future__ import annotations

import asyncio
import time
import urllib.request
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from tests.integration.test_agent_docker import IMAGE, Agents, agents, running
from tests.support import namespace_settings, remove_container
from tests.unit.test_agent_fake_master import FakeMaster, eventually, web_assignment

pytestmark = pytest.mark.integration
__all__ = ["agents"]  # the fixture, imported so pytest finds it here


@pytest.fixture
def pod_network(docker_client: Any) -> Iterator[str]:
    network = docker_client.networks.create(f"pinnace-test-pods-{uuid.uuid4().hex[:6]}")
    try:
        yield str(network.name)
    finally:
        network.reload()
        for container in network.containers:  # left only when the test failed midway
            remove_container(container.client, container.id)
        network.remove()


def page_status(address: str) -> int:
    with urllib.request.urlopen(f"http://{address}/", timeout=2) as response:
        return int(response.status)


async def page_answers(address: str, timeout: float = 20.0) -> int:
    """The page's status once it answers: the pod reports Running when its container has
    started, and nginx listens a moment later (seconds on a loaded machine: CI saw the
    connection refused right after Running)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            return await asyncio.to_thread(page_status, address)
        except OSError as e:
            if time.monotonic() > deadline:
                raise AssertionError(f"{address} did not answer within {timeout}s: {e}") from e
        await asyncio.sleep(0.1)


def test_pods_join_the_pod_network_and_report_their_ip_there(
    pod_network: str, agents: Agents, docker_client: Any
) -> None:
    # pod_network first: it is torn down after the agents and their containers are gone (torn
    # down before them, its removal raced the still running agent's: "directory not empty").
    async def scenario() -> None:
        master = FakeMaster(heartbeat=0.2, lease=10.0)
        address = await master.start()
        node = agents.node_name("net")
        try:
            agent = agents.start(address, node, "--pod-network", pod_network)
            await eventually(lambda: master.connected(node), 20, "the agent's session")
            master.assign(node, web_assignment("web-a", IMAGE, epoch=3))

            report = await eventually(lambda: running(master, node, "web-a"), 30, "web-a Running")

            (summary,) = agents.containers(node).values()
            attrs = docker_client.api.inspect_container(summary["Id"])
            settings = namespace_settings(docker_client.api, attrs)
            networks = settings["Networks"]
            assert list(networks) == [pod_network]
            assert report.host_ip == networks[pod_network]["IPAddress"]
            assert dict(report.port_map) == {"80/TCP": 80}
            assert all(not bindings for bindings in (settings["Ports"] or {}).values())
            assert await page_answers(f"{report.host_ip}:80") == 200

            # A restarted agent adopts the pod and registers it at the same endpoint.
            registrations = len(master.registrations)
            agent.kill()
            agent.wait(timeout=10)
            agents.start(address, node, "--pod-network", pod_network)
            await eventually(
                lambda: len(master.registrations) > registrations, 20, "re-registration"
            )
            (adopted,) = master.registrations[-1].pods
            assert (adopted.host_ip, dict(adopted.port_map)) == (report.host_ip, {"80/TCP": 80})
        finally:
            await master.stop()

    asyncio.run(scenario())
