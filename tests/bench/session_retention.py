"""What the agents' sessions hold between sends, per pod, measured in one process.

The master's RSS grew ~7.5 KiB a pod from 5,000 nodes / 5,000 pods to 50,000 pods in the
hollow bench, twice what tracemalloc found alive in Python: its memory probe
(tests/bench/memory_probe.py) put the rest in glibc's heap, not in pymalloc, and 45,000
more Pod objects alive than pods. Each session (master/api/node_servicer.py) is a
long-lived generator; what its frame holds between two sends stays alive as long, and
protobuf messages (upb arenas, malloc'ed in C) are invisible to tracemalloc.

This builds what the hollow bench builds, without gRPC: a ClusterState on a MemoryStore
(with the server's managedFields bookkeeping), the controller manager, the node servicer,
`--nodes` nodes registered through RegisterNode and one StreamSession each, driven by a
task as gRPC drives it, and a Deployment of `--pods` pods. Once every session has sent
its node's assignments and every pod was reported Running through the servicer (as an
agent's statuses message), the figure is what ending the sessions frees, per pod:
glibc's bytes in use and pymalloc's allocated bytes (after a full collection each).
It includes each session's own fixed cost (its tasks, flags and queue: the per-node
figure says how much). Deterministic up to a few bytes a pod.

    python -m tests.bench.session_retention --nodes 5000 --pods 50000
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import os
import sys
import time
from collections.abc import AsyncIterator
from typing import Any

from kernel.clock import FakeClock
from master.api.fieldowners import writer_fields
from master.api.node_servicer import NodeServicer
from master.controllers.manager import ControllerManager
from master.controllers.nodes import LeaseTable
from master.model import (
    Container,
    ContainerPort,
    Deployment,
    ObjectMeta,
    PodPhase,
    PodSpec,
    PodTemplate,
)
from master.pki.admission import JoinAdmission
from master.state import ClusterState
from master.store import MemoryStore
from protos import node_pb2
from tests.bench.memory_probe import libc, malloc_stats, pymalloc_stats
from tests.bench.results import Figure, record, table


def _info(name: str) -> node_pb2.NodeInfo:
    room = node_pb2.Resources(cpu_millis=32000, memory_bytes=64 * 2**30)
    return node_pb2.NodeInfo(name=name, address="127.0.0.1", capacity=room, allocatable=room)


def _running(pod: node_pb2.PodAssignment) -> node_pb2.PodStatusReport:
    """A pod Running and ready, as a hollow agent reports it (tests/bench/hollow_fleet.py)."""
    return node_pb2.PodStatusReport(
        pod_name=pod.name,
        namespace=pod.namespace,
        epoch=pod.epoch,
        phase="Running",
        host_ip="127.0.0.1",
        port_map={"80/TCP": 30000},
        ready=True,
        started_at=time.time(),
        containers=[
            node_pb2.ContainerStatusReport(
                name="c", state="running", ready=True, image="nginx:latest"
            )
        ],
    )


class _Agent:
    """One node's side of its session: hello, then statuses when told to send them."""

    def __init__(self, name: str, session_id: str) -> None:
        self.name = name
        self.session_id = session_id
        self.outbox: asyncio.Queue[node_pb2.AgentMessage | None] = asyncio.Queue()
        self.assigned: dict[str, node_pb2.PodAssignment] = {}
        self.pending: dict[str, node_pb2.PodAssignment] = {}
        self.complete = asyncio.Event()

    async def messages(self) -> AsyncIterator[node_pb2.AgentMessage]:
        hello = node_pb2.SessionHello(node_name=self.name, session_id=self.session_id)
        yield node_pb2.AgentMessage(hello=hello)
        while True:
            msg = await self.outbox.get()
            if msg is None:
                return
            yield msg
            del msg

    async def pump(self, servicer: NodeServicer) -> None:
        """Read the session as gRPC does, noting the assignment sets."""
        context: Any = None
        async for msg in servicer.StreamSession(self.messages(), context):
            self._take(msg)
            del msg  # (what this side holds is not the master's)

    def _take(self, msg: node_pb2.MasterMessage) -> None:
        if msg.WhichOneof("body") == "assignments":
            self.pending.update((p.name, p) for p in msg.assignments.pods)
            if not msg.assignments.more:
                self.assigned, self.pending = self.pending, {}
                self.complete.set()

    def report_running(self) -> None:
        reports = [_running(p) for p in self.assigned.values()]
        self.outbox.put_nowait(
            node_pb2.AgentMessage(statuses=node_pb2.PodStatusBatch(pods=reports))
        )
        # A heartbeat follows, as it does within seconds on a real agent.
        beat = node_pb2.AgentMessage(heartbeat=node_pb2.Heartbeat(sequence=1))
        self.outbox.put_nowait(beat)
        self.assigned = {}


def _in_use() -> tuple[int, int]:
    gc.collect()
    return malloc_stats(libc())["in_use"], pymalloc_stats().get("allocated", 0)


async def run(nodes: int, pods: int) -> tuple[int, int]:
    """Bytes (glibc in use, pymalloc allocated) that ending the sessions freed."""
    clock = FakeClock()
    state = ClusterState(MemoryStore(), clock)
    state.writer_fields = writer_fields
    leases = LeaseTable()
    manager = ControllerManager(state, clock, leases)
    # (Every registration admitted at once: what is measured is the sessions, not a storm.)
    admission = JoinAdmission(nodes + 1, noun="registrations")
    servicer = NodeServicer(state, leases, manager, clock, 1, 3600, registrations=admission)
    context: Any = None
    agents = []
    for i in range(nodes):
        info = _info(f"hollow-{i:05d}")
        reply = await servicer.RegisterNode(node_pb2.RegisterNodeRequest(node=info), context)
        agents.append(_Agent(info.name, reply.session_id))
    pumps = [asyncio.create_task(a.pump(servicer)) for a in agents]
    container = Container(name="c", image="nginx:latest", ports=(ContainerPort(80),))
    deployment = Deployment(
        meta=ObjectMeta(name="hollow"),
        replicas=pods,
        selector={"app": "hollow"},
        template=PodTemplate(labels={"app": "hollow"}, spec=PodSpec(containers=(container,))),
    )
    await state.commit(lambda: state.put(deployment))
    while sum(1 for p in state.pods() if p.node_name) < pods:
        manager.run_pass()
        await asyncio.sleep(0)
    reported = 0
    while reported < pods:
        await asyncio.wait_for(asyncio.gather(*(a.complete.wait() for a in agents)), 300)
        for a in agents:
            a.complete.clear()
            reported += len(a.assigned)
            a.report_running()
        await asyncio.sleep(0)
    deadline = time.monotonic() + 300
    while any(p.status.phase != PodPhase.RUNNING for p in state.pods()):
        if time.monotonic() > deadline:
            raise RuntimeError("not every pod Running after 300 s")
        manager.run_pass()
        await asyncio.sleep(0.01)
    for _ in range(10):
        await asyncio.sleep(0)  # every session back to waiting for its next change
    with_sessions = _in_use()
    for a in agents:
        a.outbox.put_nowait(None)
    servicer.stopping()
    await asyncio.wait_for(asyncio.gather(*pumps), 300)
    without = _in_use()
    return with_sessions[0] - without[0], with_sessions[1] - without[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nodes", type=int, default=1000)
    parser.add_argument("--pods", type=int, default=10000)
    parser.add_argument("--no-record", action="store_true", help="do not append results.jsonl")
    args = parser.parse_args()
    started = os.getloadavg()
    c_heap, python = asyncio.run(run(args.nodes, args.pods))
    tag = f"session retention {args.nodes}/{args.pods}"
    found = [
        Figure(
            f"{tag} glibc per pod",
            c_heap / args.pods,
            "B",
            f"in use, freed by ending the sessions ({c_heap / args.nodes:.0f} B a node)",
        ),
        Figure(
            f"{tag} pymalloc per pod",
            python / args.pods,
            "B",
            f"allocated blocks freed by ending the sessions ({python / args.nodes:.0f} B a node)",
        ),
    ]
    print(table(found))
    print(f"load average at start {started[0]:.2f}, at end {os.getloadavg()[0]:.2f}")
    if not args.no_record:
        record(found, "python -m tests.bench.session_retention " + " ".join(sys.argv[1:]))


if __name__ == "__main__":
    main()
