"""The master's CPU for the agents' service table after one pod changed, at scale.

The node sessions send every agent the service table (master/api/servicetable.py) when
it changed, at most once a second. This fills a ClusterState (in memory) with `--nodes`
nodes, `--pods` pods bound to them, Running, ready and published, and `--services`
Services: the first selects every pod (one large Deployment behind one Service), the
others a pod each. Then, 30 times: one pod's readiness flips (its endpoint comes or
goes) and the feed is asked for the table (`current()`: what the first session to wake
does), timing the put (the state's listeners run in it) and the look. The same again
for a change no endpoint depends on (a restart count).

    python -m tests.bench.service_table --nodes 1000 --pods 10000 --services 10

Prints median and worst of each (main-thread CPU, ms) and the load average.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from dataclasses import replace

from kernel.clock import FakeClock
from master.api.servicetable import ServiceTableFeed
from master.model import (
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


def _fill(state: ClusterState, nodes: int, pods: int, services: int) -> None:
    room = Resources(32000, 64 * 2**30)
    for i in range(nodes):
        state.put(
            Node(
                meta=ObjectMeta(name=f"hollow-{i:05d}"),
                address=f"10.0.{i // 250}.{i % 250 + 1}",
                capacity=room,
                allocatable=room,
                status=NodeStatus(ready=True),
            )
        )
    spec = PodSpec(containers=(Container(name="c", image="nginx", ports=(ContainerPort(80),)),))
    for i in range(pods):
        node = i % nodes
        state.put(
            Pod(
                meta=ObjectMeta(name=f"hollow-{i:06d}", labels={"app": "hollow", "i": str(i)}),
                spec=spec,
                owner="hollow",
                node_name=f"hollow-{node:05d}",
                epoch=1,
                status=PodStatus(
                    phase=PodPhase.RUNNING,
                    ready=True,
                    host_ip=f"10.0.{node // 250}.{node % 250 + 1}",
                    port_map={"80/TCP": 30000 + i % 2000},
                    container_statuses=(ContainerStatus(name="c", ready=True, image="nginx"),),
                ),
            )
        )
    for s in range(services):
        selector = {"app": "hollow"} if s == 0 else {"i": str(s)}
        state.put(
            Service(
                meta=ObjectMeta(name=f"svc-{s:03d}"),
                selector=selector,
                ports=(ServicePort(80, "80"),),
                cluster_ip=f"10.96.{s // 250}.{s % 250 + 1}",
            )
        )


def _flip(state: ClusterState, pod: Pod, endpoint: bool) -> None:
    """One pod's report: its readiness (its endpoint comes or goes) or a restart count."""
    current = state.pod(pod.meta.name)
    assert current is not None
    if endpoint:
        status = replace(current.status, ready=not current.status.ready)
    else:
        cs = current.status.container_statuses[0]
        status = replace(
            current.status, container_statuses=(replace(cs, restart_count=cs.restart_count + 1),)
        )
    state.put(replace(current, status=status))


def measure(nodes: int, pods: int, services: int) -> dict[str, list[float]]:
    state = ClusterState(MemoryStore(), FakeClock())
    _fill(state, nodes, pods, services)
    feed = ServiceTableFeed(state)
    feed.current()
    found: dict[str, list[float]] = {}
    chosen = state.pods()[:: max(1, pods // 30)][:30]
    for endpoint in (True, False):
        what = "endpoint change" if endpoint else "no endpoint change"
        for pod in chosen:
            started = time.thread_time()
            _flip(state, pod, endpoint)
            put = time.thread_time()
            feed.current()
            done = time.thread_time()
            found.setdefault(f"{what}: put", []).append(put - started)
            found.setdefault(f"{what}: current()", []).append(done - put)
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nodes", type=int, default=1000)
    parser.add_argument("--pods", type=int, default=10000)
    parser.add_argument("--services", type=int, default=10)
    args = parser.parse_args()
    load = os.getloadavg()[0]
    found = measure(args.nodes, args.pods, args.services)
    for what, costs in found.items():
        print(
            f"service table {args.nodes}/{args.pods}/{args.services} {what}: median "
            f"{statistics.median(costs) * 1000:.3f} ms, worst {max(costs) * 1000:.3f} ms (of 30)"
        )
    print(f"load average at start {load:.2f}, at end {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
