"""What a resend after a reload costs the master: every agent's whole report set at once.

After the master reloads its memory from the store it asks every connected agent for
all its pod reports again (master/api/node_servicer.py, ResendReports). Most of them
say what memory already holds: the cost is decoding each node's PodStatusBatch and
finding each report changes nothing, on the master's event loop. This fills a
ClusterState (a store that keeps nothing) with the master's listeners, `--nodes`
nodes and `--pods` pods bound to them and Running as their agents reported them, then
takes one serialized batch per node (the agent's whole outbox, status_to_proto as the
agent makes it) through the session's own path (parse, pod_report_from_proto,
NodeReports.apply) and reports the process CPU seconds, `--runs` times.

    python -m tests.bench.resend_storm --nodes 5000 --pods 50000
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import time

from agent.convert import status_to_proto
from agent.model import ContainerStatus, PodStatusReport
from kernel.clock import FakeClock
from master.api.convert import pod_report_from_proto
from master.api.node_servicer import NodeServicer
from master.controllers.manager import ControllerManager
from master.controllers.nodes import LeaseTable
from master.model import Pod, PodPhase
from master.state import ClusterState
from protos import node_pb2
from tests.bench.listener_memory import _fill, _NoStore


def _report(pod: Pod) -> PodStatusReport:
    """The agent's report of a running one-container pod."""
    [c] = pod.status.container_statuses
    return PodStatusReport(
        pod_name=pod.meta.name,
        epoch=pod.epoch,
        phase="Running",
        ready=True,
        host_ip="127.0.0.1",
        port_map=dict(pod.status.port_map),
        containers=(ContainerStatus(name=c.name, state="running", ready=True, image=c.image),),
    )


async def measure(nodes: int, pods: int, runs: int) -> list[float]:
    clock = FakeClock()
    state = ClusterState(_NoStore(), clock)
    _fill(state, nodes, pods)
    leases = LeaseTable()
    manager = ControllerManager(state, clock, leases)
    servicer = NodeServicer(state, leases, manager, clock, 1.0, 3.0)
    by_node: dict[str, list[Pod]] = {}
    for pod in state.pods():
        by_node.setdefault(pod.node_name, []).append(pod)
    batches = [
        (
            node,
            node_pb2.PodStatusBatch(
                pods=[status_to_proto(_report(p)) for p in held]
            ).SerializeToString(),
        )
        for node, held in by_node.items()
    ]
    reports = servicer._reports

    def storm() -> None:
        for node, data in batches:
            batch = node_pb2.PodStatusBatch.FromString(data)
            for report in batch.pods:
                reports.apply(node, pod_report_from_proto(report), adopted=False)

    storm()  # the first makes memory what the agents report (their own status form)
    await state.flush()
    rv = state.resource_version
    seconds = []
    for _ in range(runs):
        started = time.process_time()
        storm()
        seconds.append(time.process_time() - started)
    assert state.resource_version == rv, "a resent report changed a pod"
    phases = {p.status.phase for p in state.pods()}
    assert phases == {PodPhase.RUNNING}, phases
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nodes", type=int, default=5000)
    parser.add_argument("--pods", type=int, default=50000)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    load = os.getloadavg()
    seconds = asyncio.run(measure(args.nodes, args.pods, args.runs))
    print(
        f"resend storm {args.nodes} nodes / {args.pods} pods: CPU median "
        f"{statistics.median(seconds):.3f}s, worst {max(seconds):.3f}s "
        f"({1e6 * statistics.median(seconds) / args.pods:.1f} us a report; runs "
        f"{', '.join(f'{s:.3f}' for s in seconds)}; load {load[0]:.1f} before, "
        f"{os.getloadavg()[0]:.1f} after)"
    )


if __name__ == "__main__":
    main()
