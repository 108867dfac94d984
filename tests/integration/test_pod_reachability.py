"""The master's own TCP probe of a silent node's pods, against real listeners on 127.0.0.1."""

from __future__ import annotations

import asyncio
import socket

from kernel.clock import SystemClock
from master.lb.reachability import PodReachability, endpoints_of
from master.model import Container, Node, NodeStatus, ObjectMeta, Pod, PodSpec, PodStatus, Resources
from master.state import ClusterState
from master.store import MemoryStore


def _pod(name: str, port: int) -> Pod:
    return Pod(
        meta=ObjectMeta(name=name),
        spec=PodSpec(containers=(Container(name="web", image="pinnace/httpd:latest"),)),
        node_name="n1",
        epoch=1,
        status=PodStatus(host_ip="127.0.0.1", port_map={"80/TCP": port}),
    )


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_a_node_answers_while_one_of_its_pods_accepts_and_not_once_none_does() -> None:
    async def scenario() -> list[bool | None]:
        server = await asyncio.start_server(lambda r, w: w.close(), "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        state = ClusterState(MemoryStore(), SystemClock())
        state.put(
            Node(
                meta=ObjectMeta(name="n1"),
                address="127.0.0.1",
                capacity=Resources(1000, 2**30),
                allocatable=Resources(1000, 2**30),
                status=NodeStatus(ready=False, session_lost_at=1.0),
            )
        )
        state.put(_pod("web-a", _closed_port()))
        state.put(_pod("web-b", port))
        probe = PodReachability(state, SystemClock(), lambda n: True, interval=0.05)
        task = asyncio.create_task(probe.run())
        seen = [probe.answering("n1")]
        deadline = asyncio.get_running_loop().time() + 5
        while probe.answering("n1") is None and asyncio.get_running_loop().time() < deadline:
            await asyncio.sleep(0.02)
        seen.append(probe.answering("n1"))
        server.close()
        await server.wait_closed()
        while probe.answering("n1") is True and asyncio.get_running_loop().time() < deadline:
            await asyncio.sleep(0.02)
        seen.append(probe.answering("n1"))
        task.cancel()
        return seen

    assert asyncio.run(scenario()) == [None, True, False]


def test_endpoints_are_published_ports_of_pods_not_being_stopped() -> None:
    pods = [_pod(f"web-{i}", 8000 + i) for i in range(6)]
    pods[0] = Pod(
        meta=pods[0].meta,
        spec=pods[0].spec,
        node_name="n1",
        deletion_requested_at=1.0,
        status=pods[0].status,
    )

    assert endpoints_of(pods) == [("127.0.0.1", p) for p in (8001, 8002, 8003, 8004)]
