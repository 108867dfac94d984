"""The agent's pod routes on a real Docker network, as an agent in a container sets them.

A stand-in for the compose demo's agent container: a container on the pods' network
whose namespace holds the service range as local (as the node proxy's route makes it)
and answers HTTP there. This test process plays the agent: DockerRuntime starts the
pods, PodRoutes enters their namespaces with nsenter and the real `ip`. Shown: a pod
started before the range was known (an adopted one) is routed by the sweep, a pod
started after it is routed by the time create_and_start returns, and both then reach
the cluster IP; a crashed one started again in place is routed again; a second pass
changes nothing; a new range moves our route and keeps a route that is not ours; a
container's process is not in our namespace (what keeps an agent with `pid: host` from
adopting another agent's HAProxy); the routes go with the containers (the host has none).
"""

from __future__ import annotations

import asyncio
import ipaddress
import subprocess
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from agent.nodeproxy.podroute import PROTO, PodNetwork, choose_via
from agent.nodeproxy.podroutes import PodRoutes, local_addresses, run_in_netns
from agent.nodeproxy.table import ServiceTable
from agent.runtime.docker_runtime import DockerRuntime
from agent.runtime.port import LABEL_NODE, ContainerConfig, ContainerInfo, pod_labels
from kernel.processes import same_network_namespace
from tests.support import exec_output, remove_container

pytestmark = pytest.mark.integration
IMAGE = "pinnace/httpd:latest"


@pytest.fixture
def network(docker_client: Any) -> Iterator[str]:
    name = f"pinnace-test-routes-{uuid.uuid4().hex[:6]}"
    docker_client.networks.create(name, labels={"pinnace.test": "pod-routes"})
    try:
        yield name
    finally:
        net = docker_client.networks.get(name)
        for container in net.containers:
            remove_container(container.client, container.id)
        net.remove()


def in_pod(docker_client: Any, info: ContainerInfo, *command: str) -> str:
    """The command's output (it may run twice: Docker loses a short exec's output now and
    then, tests.support.exec_output)."""
    _, out = exec_output(docker_client.containers.get(info.id), list(command))
    return out.decode(errors="replace")


def our_routes(pid: int) -> list[str]:
    """The routes marked as the agent's in the namespace of `pid`, as `ip` prints them."""
    shown = run_in_netns(pid, ["ip", "-4", "route", "show", "proto", str(PROTO)])
    return [" ".join(line.split()) for line in shown.splitlines()]


def test_pods_reach_the_agents_cluster_ips_through_the_route_in_their_namespace(
    docker_client: Any, network: str, service_cidr: str
) -> None:
    node = f"routes-{uuid.uuid4().hex[:6]}"
    runtime = DockerRuntime(node, pod_network=network)
    ranges = [PodNetwork(s, g) for s, g in runtime.pod_network_ranges()]
    # This process runs on the engine's host, the pods' gateway: it needs no route there.
    assert choose_via(network, ranges, local_addresses()).address == ""

    # The agent's container: the range local in its namespace, an HTTP server on it.
    agent = docker_client.containers.run(
        IMAGE,
        detach=True,
        network=network,
        cap_add=["NET_ADMIN"],
        environment={"MESSAGE": "served on a cluster IP by the node"},
        labels={"pinnace.test": "pod-routes"},
    )
    agent.reload()
    via = agent.attrs["NetworkSettings"]["Networks"][network]["IPAddress"]
    assert agent.exec_run(["ip", "route", "add", "local", service_cidr, "dev", "lo"]).exit_code == 0
    assert choose_via(network, ranges, {via}).address == via
    cluster_ip = str(ipaddress.ip_network(service_cidr).network_address + 10)

    def config(pod: str) -> ContainerConfig:
        return ContainerConfig(
            name=f"pinnace-{node}-{pod}", image=IMAGE, labels={LABEL_NODE: node, **pod_labels(pod)}
        )

    async def scenario() -> None:
        routes = PodRoutes(via, runtime.list_containers)
        runtime.call_after_start(routes.after_start)
        sweeper = asyncio.create_task(routes.run())
        try:
            # Started before the range is known: no route yet.
            adopted = await runtime.create_and_start(config("adopted"))
            assert adopted.pid > 0
            assert await asyncio.to_thread(our_routes, adopted.pid) == []

            routes.offer(ServiceTable(version=1, service_cidr=service_cidr))
            for _ in range(200):
                if routes.swept == service_cidr:
                    break
                await asyncio.sleep(0.05)
            assert routes.swept == service_cidr
            fresh = await runtime.create_and_start(config("fresh"))
            want = [f"{service_cidr} via {via} dev eth0"]
            for pod in (adopted, fresh):
                assert await asyncio.to_thread(our_routes, pod.pid) == want
                page = await asyncio.to_thread(
                    in_pod,
                    docker_client,
                    pod,
                    "timeout",
                    "5",
                    "wget",
                    "-qO-",
                    f"http://{cluster_ip}/",
                )
                assert "served on a cluster IP by the node" in page

            # A crashed container started again in place has a new namespace: routed again.
            docker_client.api.kill(fresh.id)
            again = await runtime.restart_in_place(fresh.id, fresh.name)
            assert again.pid not in (0, fresh.pid)
            assert await asyncio.to_thread(our_routes, again.pid) == want
            fresh = again

            # Idempotent: nothing to do the second time.
            assert await asyncio.to_thread(routes.ensure, fresh.pid, service_cidr) == []

            # A route that is not ours stays; ours follows a new range.
            foreign = "10.199.0.0/16"
            await asyncio.to_thread(
                run_in_netns, fresh.pid, ["ip", "route", "add", foreign, "via", via]
            )
            moved = "10.198.0.0/16"
            await asyncio.to_thread(routes.ensure, fresh.pid, moved)
            assert await asyncio.to_thread(our_routes, fresh.pid) == [f"{moved} via {via} dev eth0"]
            table = await asyncio.to_thread(run_in_netns, fresh.pid, ["ip", "-4", "route"])
            assert f"{foreign} via {via}" in table

            # Another container's process is in another namespace: never "our" HAProxy.
            assert not same_network_namespace(fresh.pid)
        finally:
            sweeper.cancel()
            for info in await runtime.list_containers():
                await runtime.remove(info.id)
            await runtime.close()

    asyncio.run(scenario())
    # Nothing on the host: the routes lived and went with the pods' namespaces.
    host = subprocess.run(
        ["ip", "-4", "route", "show", "proto", str(PROTO)],
        capture_output=True,
        text=True,
        check=True,
    )
    assert service_cidr not in host.stdout
