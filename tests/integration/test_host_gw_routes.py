"""host-gw across machines with network stacks of their own: two "machines" are network
namespaces joined by one link (one L2 network), each with a pod bridge of its node's
subnet and a pod behind it. The agents' own code (agent/hostgw: the plan from the
service table and this machine's interfaces, the ip commands it runs) programs each
machine; before it, a pod cannot reach the other machine's pod at its address; after
it, it can, both ways, and the pod on the far side sees the client's own address. A
machine on no network of this one's is refused (an event, no route), and a node gone
takes its route with it.

The Docker tests (test_service_vips.py) run every agent on one machine, where the
other nodes' bridges are directly connected and no route is needed: this module is
where the routes themselves are shown to carry pod traffic between machines.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import json
import subprocess
import sys
import uuid
from collections.abc import Iterator, Sequence
from typing import Any

import docker
import docker.errors
import docker.types
import pytest

from agent.hostgw.bridge import BRIDGE_OPTIONS
from agent.hostgw.plan import NodeSubnet
from agent.hostgw.routes import HostRoutes, run_command
from agent.nodeproxy.table import ServiceTable
from agent.runtime.docker_runtime import DockerRuntime
from agent.runtime.port import (
    LABEL_NODE,
    ContainerConfig,
    ContainerInfo,
    RuntimeFailure,
    pod_labels,
)
from kernel.clock import FakeClock
from tests.integration.cluster import pod_range
from tests.support import remove_container

pytestmark = pytest.mark.integration

IMAGE = "pinnace/httpd:latest"
CLUSTER = "10.254.0.0/16"
LAN = ("192.0.2.1", "192.0.2.2")
SUBNETS = ("10.254.1.0/24", "10.254.2.0/24")


def _ns(ns: str, *command: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["ip", "netns", "exec", ns, *command], capture_output=True, text=True, check=check
    )


@pytest.fixture
def machines() -> Iterator[tuple[str, str, str, str]]:
    """Namespaces (machine a, machine b, pod on a, pod on b), removed afterwards."""
    tag = uuid.uuid4().hex[:6]
    names = tuple(f"hgw-{tag}-{n}" for n in ("a", "b", "pa", "pb"))
    made: list[str] = []
    try:
        for name in names:
            subprocess.run(["ip", "netns", "add", name], check=True)
            made.append(name)
            _ns(name, "ip", "link", "set", "lo", "up")
        a, b, pa, pb = names
        # The machines' shared link.
        subprocess.run(
            ["ip", "link", "add", f"l{tag}a", "netns", a, "type", "veth", "peer", "name",
             f"l{tag}b", "netns", b],
            check=True,
        )  # fmt: skip
        for ns, side, address in ((a, "a", LAN[0]), (b, "b", LAN[1])):
            _ns(ns, "ip", "addr", "add", f"{address}/24", "dev", f"l{tag}{side}")
            _ns(ns, "ip", "link", "set", f"l{tag}{side}", "up")
            _ns(ns, "sysctl", "-qw", "net.ipv4.ip_forward=1")
        # Each machine's pod bridge of its node's subnet, and a pod on it.
        for ns, pod, subnet in ((a, pa, SUBNETS[0]), (b, pb, SUBNETS[1])):
            net = ipaddress.ip_network(subnet)
            gateway, pod_ip = net.network_address + 1, net.network_address + 2
            _ns(ns, "ip", "link", "add", "br0", "type", "bridge")
            _ns(ns, "ip", "addr", "add", f"{gateway}/{net.prefixlen}", "dev", "br0")
            _ns(ns, "ip", "link", "set", "br0", "up")
            _ns(ns, "ip", "link", "add", "veth0", "type", "veth", "peer", "name", "eth0",
                "netns", pod)  # fmt: skip
            _ns(ns, "ip", "link", "set", "veth0", "master", "br0", "up")
            _ns(pod, "ip", "addr", "add", f"{pod_ip}/{net.prefixlen}", "dev", "eth0")
            _ns(pod, "ip", "link", "set", "eth0", "up")
            _ns(pod, "ip", "route", "add", "default", "via", str(gateway))
        yield a, b, pa, pb
    finally:
        for name in made:
            subprocess.run(["ip", "netns", "del", name], check=False)


def _interfaces(ns: str) -> tuple[set[str], list[str]]:
    """What local_interfaces says, for a namespace this process is not in."""
    rows = json.loads(_ns(ns, "ip", "-j", "-4", "addr", "show").stdout)
    found = [(a["local"], a["prefixlen"]) for r in rows for a in r.get("addr_info", [])]
    return (
        {address for address, _ in found},
        [str(ipaddress.ip_interface(f"{address}/{bits}").network) for address, bits in found],
    )


def _agent(node: str, ns: str, told: list[str]) -> HostRoutes:
    """The agent's host-gw shell for machine `ns`; its node events go to `told`."""

    def runner(command: Sequence[str]) -> str:
        return run_command(["ip", "netns", "exec", ns, *command])

    def notify(reason: str, text: str) -> None:
        told.append(f"{reason}: {text}")

    return HostRoutes(node, FakeClock(), notify, runner, lambda: _interfaces(ns))


def _answers(client: str, server: str, address: str, wait: float = 5.0) -> bool:
    """Whether a datagram from pod `client` reaches `address`, the pod `server`."""
    return bool(_source_seen(client, server, address, wait))


def test_each_machine_routes_the_other_nodes_pod_subnet_via_its_address(
    machines: tuple[str, str, str, str],
) -> None:
    a, b, pa, pb = machines
    table = ServiceTable(
        1,
        cluster_cidr=CLUSTER,
        subnets=(
            NodeSubnet("node-a", LAN[0], SUBNETS[0]),
            NodeSubnet("node-b", LAN[1], SUBNETS[1]),
            NodeSubnet("node-far", "198.51.100.7", "10.254.3.0/24"),
        ),
    )
    pod_a, pod_b = "10.254.1.2", "10.254.2.2"
    assert not _answers(pa, pb, pod_b, wait=1.0)

    told: list[str] = []
    agents = [_agent("node-a", a, told), _agent("node-b", b, [])]
    ran = []
    for agent in agents:
        agent.offer(table)
        ran.append(agent.apply(agent.plan, CLUSTER))

    assert ran[0][0] == ["ip", "-4", "route", "replace", SUBNETS[1], "via", LAN[1], "proto", "114"]
    # Both ways, and the far pod sees the client pod's own address.
    assert _source_seen(pa, pb, pod_b) == pod_a
    assert _source_seen(pb, pa, pod_a) == pod_b
    assert agents[0].reachable == {"node-a", "node-b"}
    assert told and "node node-far: its address 198.51.100.7 is on no network" in told[0]
    # Applying again changes nothing; a node gone takes its route with it.
    assert agents[0].apply(agents[0].plan, CLUSTER) == []
    agents[0].offer(ServiceTable(2, cluster_cidr=CLUSTER, subnets=table.subnets[:1]))
    assert agents[0].apply(agents[0].plan, CLUSTER)[0][:5] == [
        "ip",
        "-4",
        "route",
        "del",
        SUBNETS[1],
    ]
    assert not _answers(pa, pb, pod_b, wait=1.0)


_RECEIVE = """
import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind(("0.0.0.0", 9999))
print("ready", flush=True)
s.settimeout(float(sys.argv[1]))
try:
    print(s.recvfrom(64)[1][0], flush=True)
except OSError:
    print("", flush=True)
"""
_SEND = """
import socket, sys
socket.socket(socket.AF_INET, socket.SOCK_DGRAM).sendto(b"hello", (sys.argv[1], 9999))
"""


def _source_seen(client: str, server: str, address: str, wait: float = 5.0) -> str:
    """The source address a datagram from `client` to `address` (in `server`) arrives with,
    "" when none arrives within `wait` seconds."""
    receiver = subprocess.Popen(
        ["ip", "netns", "exec", server, sys.executable, "-c", _RECEIVE, str(wait)],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert receiver.stdout is not None and receiver.stdout.readline().strip() == "ready"
        _ns(client, sys.executable, "-c", _SEND, address)
        return receiver.stdout.readline().strip()
    finally:
        receiver.kill()
        receiver.wait()
        if receiver.stdout is not None:
            receiver.stdout.close()


def test_a_node_whose_subnet_changes_runs_new_pods_on_a_bridge_of_the_new_subnet_at_once(
    docker_client: Any,
) -> None:
    """The agent's DockerRuntime on the real engine: its node's subnet changes while a pod
    still runs on the old bridge; the next pod goes on a bridge of the new subnet (it went
    on Docker's default bridge until the agent restarted), and once the old pod is gone
    the old bridge goes too. Both bridges let routed traffic in on Docker >= 28."""
    node = f"hgw-{uuid.uuid4().hex[:6]}"
    old_subnet, new_subnet = list(pod_range(docker_client).subnets(new_prefix=24))[:2]
    runtime = DockerRuntime(node)

    def config(pod: str) -> ContainerConfig:
        return ContainerConfig(
            name=f"pinnace-{node}-{pod}", image=IMAGE, labels={LABEL_NODE: node, **pod_labels(pod)}
        )

    def address(info: ContainerInfo) -> ipaddress.IPv4Address:
        networks = docker_client.api.inspect_container(info.id)["NetworkSettings"]["Networks"]
        (only,) = networks.values()
        return ipaddress.IPv4Address(only["IPAddress"])

    async def scenario() -> list[str]:
        settled = runtime.use_pod_subnet(str(old_subnet))
        assert settled is not None and await settled == f"pinnace-pods-{node}"
        old = await runtime.create_and_start(config("old"))
        assert address(old) in old_subnet

        settled = runtime.use_pod_subnet(str(new_subnet))
        assert settled is not None
        moved = await settled
        new = await runtime.create_and_start(config("new"))
        assert address(new) in new_subnet, "a new pod went on Docker's default bridge"
        assert docker_client.api.inspect_network(moved)["Options"] == dict(BRIDGE_OPTIONS)

        await runtime.stop(old.id, 1)
        await runtime.remove(old.id)
        third = await runtime.create_and_start(config("third"))
        assert address(third) in new_subnet
        return [
            n["Name"] for n in docker_client.api.networks(filters={"label": f"{LABEL_NODE}={node}"})
        ]

    try:
        assert asyncio.run(scenario()) == [
            f"pinnace-pods-{node}-{new_subnet}".replace(".", "-").replace("/", "-")
        ]
    finally:
        for c in docker_client.containers.list(all=True, filters={"label": f"{LABEL_NODE}={node}"}):
            remove_container(c.client, c.id)
        for n in docker_client.networks.list(filters={"label": f"{LABEL_NODE}={node}"}):
            n.remove()


def test_a_bridge_the_engine_refused_is_made_at_a_later_pod_start(docker_client: Any) -> None:
    """The engine refuses the node's bridge (another network holds an overlapping subnet):
    pods go on Docker's default bridge, saying why; once that network is gone, the next pod
    start makes the bridge and the pod goes on it. The refusal was final before: nothing
    asked again while the node's subnet stayed the same, until the agent restarted."""
    node = f"hgw-{uuid.uuid4().hex[:6]}"
    subnet = next(pod_range(docker_client).subnets(new_prefix=24))
    runtime = DockerRuntime(node)
    # Not the node's (no label, another name): bridge_plan does not see it; the engine does.
    blocker = docker_client.networks.create(
        f"{node}-blocker",
        driver="bridge",
        ipam=docker.types.IPAMConfig(pool_configs=[docker.types.IPAMPool(subnet=str(subnet))]),
    )

    def config(pod: str) -> ContainerConfig:
        return ContainerConfig(
            name=f"pinnace-{node}-{pod}", image=IMAGE, labels={LABEL_NODE: node, **pod_labels(pod)}
        )

    def networks(info: ContainerInfo) -> list[str]:
        return list(docker_client.api.inspect_container(info.id)["NetworkSettings"]["Networks"])

    async def scenario() -> None:
        settled = runtime.use_pod_subnet(str(subnet))
        assert settled is not None
        with pytest.raises(RuntimeFailure, match="until a pod start finds it can be made"):
            await settled
        first = await runtime.create_and_start(config("first"))
        assert networks(first) == ["bridge"]

        blocker.remove()
        second = await runtime.create_and_start(config("second"))
        assert networks(second) == [f"pinnace-pods-{node}"], "the bridge was never made"

    try:
        asyncio.run(scenario())
    finally:
        for c in docker_client.containers.list(all=True, filters={"label": f"{LABEL_NODE}={node}"}):
            remove_container(c.client, c.id)
        for n in docker_client.networks.list(filters={"label": f"{LABEL_NODE}={node}"}):
            n.remove()
        with contextlib.suppress(docker.errors.NotFound):
            blocker.remove()
