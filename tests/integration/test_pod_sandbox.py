"""Pod sandboxes on a real engine (DockerRuntime with pod_sandbox, the agent's --pod-sandbox):
a pod's containers share the network namespace of one holder, which publishes the pod's
ports; a crashed container starts again in it; a holder that dies takes its containers with
it; the pod's last container takes its holder. The Runtime port's contract in this mode is
tests/integration/test_agent_runtime_contract.py's "docker-sandbox" half; a cluster with
--pod-sandbox agents is tests/integration/test_pod_sandbox_cluster.py.

Every container carries a node name unique to the test and is removed by id afterwards.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import time
import uuid
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import replace
from typing import Any

import pytest

from agent.runtime.docker_runtime import DockerRuntime
from agent.runtime.port import (
    LABEL_SANDBOX,
    ContainerConfig,
    ContainerInfo,
    PortBinding,
    container_name,
    sandbox_name,
)
from tests.integration.cluster import pod_range
from tests.support import remove_container

pytestmark = pytest.mark.integration

IMAGE = "pinnace/httpd:latest"
DEADLINE = 30.0


@pytest.fixture
def node(docker_client: Any) -> Iterator[str]:
    name = f"sbx-{uuid.uuid4().hex[:8]}"
    try:
        yield name
    finally:
        for c in docker_client.api.containers(all=True, filters={"label": f"pinnace.node={name}"}):
            remove_container(docker_client, c["Id"])


def config(node: str, container: str, port: int, pod: str = "p") -> ContainerConfig:
    web = PortBinding(80)
    side = PortBinding(8080)
    return ContainerConfig(
        name=container_name(node, pod, container),
        image=IMAGE,
        labels={"pinnace.node": node, "pinnace.pod": pod, "pinnace.container": container},
        env=(("PORT", str(port)), ("MESSAGE", container)),
        ports=(web if port == 80 else side,),
        pod_ports=(web, side),
        host_ip="127.0.0.1",
        hostname="p-0",
        dns_search=("example.test",),
    )


def run(scenario: Callable[[DockerRuntime], Awaitable[None]], node: str, **runtime: Any) -> None:
    async def body() -> None:
        rt = DockerRuntime(node, **({"pod_sandbox": "all"} | runtime))
        try:
            await scenario(rt)
        finally:
            await rt.close()

    asyncio.run(asyncio.wait_for(body(), 90))


async def until(what: str, check: Callable[[], Awaitable[bool]]) -> None:
    deadline = time.monotonic() + DEADLINE
    while not await check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.05)


def holders(client: Any, node: str) -> list[dict[str, Any]]:
    return [
        c
        for c in client.api.containers(all=True, filters={"label": f"pinnace.node={node}"})
        if LABEL_SANDBOX in c["Labels"]
    ]


def test_a_pods_containers_share_one_holders_namespace_ports_and_hostname(
    docker_client: Any, node: str
) -> None:
    async def scenario(rt: DockerRuntime) -> None:
        web = await rt.create_and_start(config(node, "web", 80))
        side = await rt.create_and_start(config(node, "side", 8080))

        (holder,) = holders(docker_client, node)
        assert holder["Names"] == [f"/{sandbox_name(node, 'p')}"]
        assert web.sandbox_id == side.sandbox_id == holder["Id"]
        # Both read the holder's published ports: every port of the pod.
        assert set(web.ports) == set(side.ports) == {"80/TCP", "8080/TCP"}
        assert web.ports == side.ports and all(p > 0 for p in web.ports.values())
        # The holder is nobody's container in the agent's listing.
        assert sorted(c.id for c in await rt.list_containers()) == sorted([web.id, side.id])
        # One localhost: the side car reaches web on 127.0.0.1:80; the pod's hostname and
        # resolv.conf are the holder's.
        got = await rt.exec(side.id, ("wget", "-qO-", "http://127.0.0.1:80/healthz"))
        assert (got.exit_code, got.output.strip()) == (0, "ok")
        named = await rt.exec(web.id, ("sh", "-c", "hostname; cat /etc/resolv.conf"))
        assert named.output.splitlines()[0] == "p-0"
        assert "example.test" in named.output

    run(scenario, node)


def test_a_crashed_container_runs_again_in_its_sandbox(docker_client: Any, node: str) -> None:
    async def scenario(rt: DockerRuntime) -> None:
        web = await rt.create_and_start(config(node, "web", 80))
        docker_client.api.kill(web.id)

        async def dead() -> bool:
            seen = await rt.inspect(web.id)
            return seen is not None and seen.dead

        await until("the container dead", dead)
        again = await rt.restart_in_place(web.id, config(node, "web", 80).name)

        assert again.state == "running" and again.sandbox_id == web.sandbox_id
        assert again.ports == web.ports
        fresh = await rt.replace(web.id, config(node, "web", 80))
        assert fresh.sandbox_id == web.sandbox_id and fresh.ports == web.ports
        assert [h["Id"] for h in holders(docker_client, node)] == [web.sandbox_id]

    run(scenario, node)


def test_a_holder_that_dies_takes_its_containers_and_the_next_start_makes_a_new_one(
    docker_client: Any, node: str
) -> None:
    async def scenario(rt: DockerRuntime) -> None:
        web = await rt.create_and_start(config(node, "web", 80))
        side = await rt.create_and_start(config(node, "side", 8080))
        deaths: list[str] = []
        starts: list[str] = []

        async def watch() -> None:
            async for event in rt.events():
                (deaths if event.action == "die" else starts).append(event.container_id)

        watching = asyncio.create_task(watch())
        # Another pod's start, seen as an event: the stream is open before the kill.
        other = await rt.create_and_start(config(node, "web", 80, pod="q"))
        await until("the other pod's start seen", lambda: _holds({other.id}, starts))
        docker_client.api.kill(web.sandbox_id)

        async def swept() -> bool:
            ids = {c["Id"] for c in docker_client.api.containers(all=True)}
            return not ids & {web.id, side.id, web.sandbox_id}

        await until("the pod's containers and holder removed", swept)
        await until("both containers' deaths seen", lambda: _holds({web.id, side.id}, deaths))
        watching.cancel()
        assert web.sandbox_id not in deaths  # a holder's events are not the agent's
        assert [c.id for c in await rt.list_containers()] == [other.id]

        again = await rt.create_and_start(config(node, "web", 80))
        assert again.sandbox_id not in ("", web.sandbox_id)
        assert {h["Id"] for h in holders(docker_client, node)} == {
            again.sandbox_id,
            other.sandbox_id,
        }

    run(scenario, node)


async def _holds(wanted: set[str], seen: list[str]) -> bool:
    return wanted <= set(seen)


def test_the_pods_last_container_takes_its_holder(docker_client: Any, node: str) -> None:
    async def scenario(rt: DockerRuntime) -> None:
        web = await rt.create_and_start(config(node, "web", 80))
        side = await rt.create_and_start(config(node, "side", 8080))

        await rt.stop(web.id, 1)
        await rt.remove(web.id)
        assert [h["Id"] for h in holders(docker_client, node)] == [web.sandbox_id]
        await rt.stop(side.id, 1)
        await rt.remove(side.id)
        assert holders(docker_client, node) == []
        assert await rt.list_containers() == []

    run(scenario, node)


def test_a_holder_left_without_containers_goes_at_the_next_listing(
    docker_client: Any, node: str
) -> None:
    async def scenario(rt: DockerRuntime) -> None:
        web = await rt.create_and_start(config(node, "web", 80))
        # As if the agent died between removing the pod's container and its holder.
        remove_container(docker_client, web.id)
        assert await rt.list_containers() == []
        assert holders(docker_client, node) == []

    run(scenario, node)


def test_a_pod_whose_ports_changed_gets_a_new_holder(docker_client: Any, node: str) -> None:
    async def scenario(rt: DockerRuntime) -> None:
        web = await rt.create_and_start(config(node, "web", 80))
        moved = replace(config(node, "web", 80), pod_ports=(PortBinding(80), PortBinding(81)))
        fresh: ContainerInfo = await rt.replace(web.id, moved)

        assert fresh.sandbox_id != web.sandbox_id and set(fresh.ports) == {"80/TCP", "81/TCP"}
        assert [h["Id"] for h in holders(docker_client, node)] == [fresh.sandbox_id]

    run(scenario, node)


def test_by_default_only_a_pod_of_more_than_one_container_gets_a_holder(
    docker_client: Any, node: str
) -> None:
    async def scenario(rt: DockerRuntime) -> None:
        alone = replace(config(node, "web", 80, pod="solo"), pod_containers=1)
        solo = await rt.create_and_start(alone)
        assert solo.sandbox_id == "" and set(solo.ports) == {"80/TCP"}
        assert holders(docker_client, node) == []
        named = await rt.exec(solo.id, ("hostname",))
        assert named.output.strip() == "p-0"

        web = await rt.create_and_start(replace(config(node, "web", 80), pod_containers=2))
        (holder,) = holders(docker_client, node)
        assert web.sandbox_id == holder["Id"]
        # It logs nothing: no log file for the engine to keep.
        assert (
            docker_client.api.inspect_container(holder["Id"])["HostConfig"]["LogConfig"]["Type"]
            == "none"
        )

    run(scenario, node, pod_sandbox="multi")


def test_without_the_sandbox_image_the_pod_runs_without_one_and_says_so_once(
    docker_client: Any, node: str, caplog: pytest.LogCaptureFixture
) -> None:
    absent = f"pinnace/no-such-pause:{uuid.uuid4().hex[:8]}"

    async def scenario(rt: DockerRuntime) -> None:
        web = await rt.create_and_start(replace(config(node, "web", 80), pod_containers=2))
        side = await rt.create_and_start(replace(config(node, "side", 8080), pod_containers=2))

        assert holders(docker_client, node) == []
        assert web.state == side.state == "running"
        assert web.sandbox_id == side.sandbox_id == ""
        # Each with a network of its own: its own ports, and the pod's hostname still.
        assert set(web.ports) == {"80/TCP"} and set(side.ports) == {"8080/TCP"}
        assert (await rt.exec(side.id, ("hostname",))).output.strip() == "p-0"
        for info in (web, side):
            assert (
                absent in info.sandbox_note and "pod p runs without a sandbox" in info.sandbox_note
            )
        # The listing describes them as they are; the note is only the create's news.
        listed = {c.id: c for c in await rt.list_containers()}
        assert listed[web.id].sandbox_note == ""

    with caplog.at_level(logging.WARNING, logger="agent.runtime.docker_runtime"):
        run(scenario, node, pod_sandbox="multi", sandbox_image=absent)
    said = [r for r in caplog.records if absent in r.getMessage()]
    assert len(said) == 1, [r.getMessage() for r in said]


def test_a_holder_made_before_the_nodes_pod_bridge_is_replaced_on_it(
    docker_client: Any, node: str
) -> None:
    """A pod started while the node's pods still went on Docker's default bridge (before
    the master gave the node its subnet, or while an old bridge of an overlapping subnet
    still had pods) gets a holder there; a container of that pod made once the node's
    bridge exists gets a new holder on the bridge, not the old one: the pod's address is
    then in the node's subnet, which the other nodes route to (it kept its default-bridge
    address before, which nothing routes to)."""
    subnet = next(pod_range(docker_client).subnets(new_prefix=24))

    def bridge_of(info: ContainerInfo) -> dict[str, Any]:
        holder = docker_client.api.inspect_container(info.sandbox_id)
        return dict(holder["NetworkSettings"]["Networks"])

    async def scenario(rt: DockerRuntime) -> None:
        web = await rt.create_and_start(config(node, "web", 80))
        assert list(bridge_of(web)) == ["bridge"]
        settled = rt.use_pod_subnet(str(subnet))
        assert settled is not None
        bridge = await settled

        side = await rt.create_and_start(config(node, "side", 8080))

        networks = bridge_of(side)
        assert list(networks) == [bridge], "the pod stayed on Docker's default bridge"
        assert ipaddress.ip_address(networks[bridge]["IPAddress"]) in subnet
        # The old holder went, and the container that joined it (the agent makes it again).
        ids = {c["Id"] for c in docker_client.api.containers(all=True)}
        assert not ids & {web.id, web.sandbox_id}
        again = await rt.create_and_start(config(node, "web", 80))
        assert again.sandbox_id == side.sandbox_id

    try:
        run(scenario, node)
    finally:
        for c in docker_client.api.containers(all=True, filters={"label": f"pinnace.node={node}"}):
            remove_container(docker_client, c["Id"])
        for n in docker_client.networks.list(filters={"label": f"pinnace.node={node}"}):
            n.remove()
