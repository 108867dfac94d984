"""The memory the master's state listeners retain per pod, measured with tracemalloc.

The state's subscribers (the controller manager's PodIndex and OwnerCounts, the Kubernetes
API's watch hub, the node servicer with its service table feed and ConfigMap readers, the
node reports, the load balancer) each derive something from every pod. Whatever a
listener keeps per pod is memory the master holds at 50,000 pods on top of the pods
themselves; a listener told only a change's new version kept a copy of every pod to know
the old one.

This fills a ClusterState (in memory; the store keeps nothing) with `--nodes` nodes and
`--pods` pods bound to them and Running, as the apply path leaves them, and changes every
pod's status once; then it builds the listeners the master builds, changes every pod's
status once more as an agent's report does (a listener that remembers pods by their
changes fills up then), writes a ConfigMap (the node servicer's reader index is built
then) and flushes. What tracemalloc holds after a full collection, less what it held
before the listeners were built, divided by the pods, is the figure (traced from the
start, so a replaced version counts as freed). The watch hub's history of recent
changes (20,000 by default) is part of it, whatever the listener contract. Deterministic
(the same run gives the same bytes, up to a few hundred); the top source lines say
where it went.

`--service` adds one Service over every pod: then the service table and the load
balancer hold every pod's endpoint (the table the sessions send, the programme applied).

    python -m tests.bench.listener_memory --nodes 5000 --pods 50000 [--service]
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import os
import sys
import tracemalloc
from dataclasses import replace
from pathlib import Path
from typing import Any

from kernel.clock import FakeClock
from master.api.kube.watch import WatchHub
from master.api.node_servicer import NodeServicer
from master.controllers.manager import ControllerManager
from master.controllers.nodes import LeaseTable
from master.lb.controller import LoadBalancerController
from master.lb.model import LbAddresses
from master.model import (
    ConfigMap,
    Container,
    ContainerPort,
    ContainerStatus,
    Node,
    NodeStatus,
    ObjectMeta,
    Pod,
    PodPhase,
    PodSpec,
    PodStatus,
    Resources,
    Service,
    ServicePort,
)
from master.state import ClusterState
from master.store import MemoryStore
from tests.bench.results import Figure, record, table


def _fill(state: ClusterState, nodes: int, pods: int) -> None:
    room = Resources(32000, 64 * 2**30)
    for i in range(nodes):
        state.put(
            Node(
                meta=ObjectMeta(name=f"hollow-{i:05d}"),
                address="127.0.0.1",
                capacity=room,
                allocatable=room,
                status=NodeStatus(ready=True),
            )
        )
    spec = PodSpec(containers=(Container(name="c", image="nginx", ports=(ContainerPort(80),)),))
    labels = {"app": "hollow"}
    for i in range(pods):
        status = PodStatus(
            phase=PodPhase.RUNNING,
            ready=True,
            host_ip="127.0.0.1",
            port_map={"80/TCP": 30000 + i % 2000},
            container_statuses=(ContainerStatus(name="c", ready=True, image="nginx"),),
        )
        state.put(
            Pod(
                meta=ObjectMeta(name=f"hollow-{i:06d}", labels=labels),
                spec=spec,
                owner="hollow",
                template_hash="abcde",
                node_name=f"hollow-{i % nodes:05d}",
                epoch=1,
                status=status,
            )
        )


class _NoStore(MemoryStore):
    """Writes go nowhere: the store's own copy of every object is not the listeners'."""

    def write(self, puts: object, deletes: object, meta: object = None) -> None:
        pass


def _report_every_pod(state: ClusterState, restarts: int) -> None:
    """Each pod's status changed once, as an agent's report changes it."""
    for pod in state.pods():
        restarted = replace(pod.status.container_statuses[0], restart_count=restarts)
        state.put(replace(pod, status=replace(pod.status, container_statuses=(restarted,))))


class _Driver:
    """A load balancer driver that takes every programme and keeps nothing."""

    running = True
    adopted = False
    pid = 0
    config_path = Path("/nonexistent/haproxy.cfg")

    async def apply(self, *args: Any) -> None:
        return None


async def measure(nodes: int, pods: int, service: bool) -> tuple[int, list[str]]:
    """Bytes the listeners retain after the churn, and the top source lines."""
    clock = FakeClock()
    state = ClusterState(_NoStore(), clock)
    # Traced from the start, so the versions a change replaces count as freed.
    tracemalloc.start(1)
    _fill(state, nodes, pods)
    if service:
        state.put(
            Service(
                meta=ObjectMeta(name="hollow"),
                selector={"app": "hollow"},
                ports=(ServicePort(80, "80"),),
                cluster_ip="10.96.0.10",
            )
        )
    # The same churn without listeners first: what it leaves behind is not theirs.
    _report_every_pod(state, 1)
    await state.flush()
    gc.collect()
    before = tracemalloc.take_snapshot()
    base = tracemalloc.get_traced_memory()[0]
    leases = LeaseTable()
    manager = ControllerManager(state, clock, leases)
    hub = WatchHub(state)
    servicer = NodeServicer(state, leases, manager, clock, 1.0, 3.0)
    lb = LoadBalancerController(
        state,
        clock,
        _Driver(),  # type: ignore[arg-type]
        LbAddresses(listen="127.0.0.1", internal="127.0.0.2"),
    )
    _report_every_pod(state, 2)
    state.put(ConfigMap(meta=ObjectMeta(name="settings"), data={"a": "b"}))
    # What the sessions and the load balancer hold once they looked (the table, the
    # programme applied).
    servicer._service_table.current()
    await lb.sync_once()
    await state.flush()
    gc.collect()
    held = tracemalloc.get_traced_memory()[0] - base
    after = tracemalloc.take_snapshot()
    tracemalloc.stop()
    top = [
        f"{s.size_diff / pods:8.1f} B/pod  {s.traceback[0].filename.rsplit('/', 3)[-2:]}"
        f":{s.traceback[0].lineno}"
        for s in after.compare_to(before, "lineno")[:8]
    ]
    del manager, hub, servicer, lb
    return held, top


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nodes", type=int, default=5000)
    parser.add_argument("--pods", type=int, default=50000)
    parser.add_argument(
        "--service", action="store_true", help="one Service selects every pod (endpoints)"
    )
    parser.add_argument("--no-record", action="store_true", help="do not append results.jsonl")
    args = parser.parse_args()
    load = os.getloadavg()[0]
    held, top = asyncio.run(measure(args.nodes, args.pods, args.service))
    with_service = " with a Service over them" if args.service else ""
    found = [
        Figure(
            f"listener memory {args.nodes}/{args.pods}{with_service} per pod",
            held / args.pods,
            "B",
            f"tracemalloc, retained after one status change of every pod; {held / 2**20:.1f} MiB",
        )
    ]
    print(table(found))
    print("\n".join(top))
    print(f"load average at start {load:.2f}")
    if not args.no_record:
        record(found, "python -m tests.bench.listener_memory " + " ".join(sys.argv[1:]))


if __name__ == "__main__":
    main()
