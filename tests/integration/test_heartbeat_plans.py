"""A real agent's heartbeat plan stretches as the cluster grows and shrinks again within its
session once the cluster allows it, and the master never finds the node dead meanwhile.

A real master (`--heartbeat-interval 4 --lease-seconds 6 --max-heartbeats-per-second 2`)
and a real agent over gRPC. Fifteen more nodes registered straight through the API (no
sessions: they are only counted) make the cluster 16 nodes: the agent's next ack stretches
its plan (8 s beats at the cap, longer if the master's loop is behind on this busy machine
and its budget cut). Deleting them leaves one node, whose plan is 4 s (at the cap and at
the budget's floor alike): the master offers the shorter plan in an ack, the agent
confirms it with a heartbeat at once, and the master judges by the shorter lease (the
node's Lease in the Kubernetes API) from that heartbeat on (master/controllers/
session_plan.py): within a round trip of the agent taking the plan, not one new interval
(4 s) later, when its next beat was due (a node that stalled in between was judged by the
old lease). All in one session (one registration), the node Ready at every look (every
0.1 s) throughout, and Ready for four of the new leases after the master judges by it: a
master judging by the short lease while the agent beat by the long interval would have
found it NotReady. Before, a plan never shrank within a session.
"""

from __future__ import annotations

import json
import re
import threading
import time
import urllib.error
import urllib.request
from datetime import datetime
from typing import Any

import grpc
import pytest

from protos import node_pb2, node_pb2_grpc
from tests.integration.cluster import LocalCluster, wait_for

pytestmark = pytest.mark.integration

GHOSTS = 15
PLAN = re.compile(
    r"^(\S+ \S+) INFO .*heartbeat plan (\d+): every ([\d.]+)s, lease ([\d.]+)s", re.MULTILINE
)
# Seconds from the agent taking the shorter plan until the master judges by its lease: a
# round trip and the 0.1 s look, with room for a busy machine; one new interval (4 s)
# before, when the agent said the plan with its next beat.
CONFIRMED_WITHIN = 2.0


def _get(cluster: LocalCluster, path: str) -> Any:
    with urllib.request.urlopen(f"{cluster.api_url}{path}", timeout=10) as reply:
        return json.loads(reply.read())


def _ready(cluster: LocalCluster, node: str) -> bool:
    try:
        conditions = _get(cluster, f"/api/v1/nodes/{node}")["status"]["conditions"]
    except urllib.error.HTTPError as exc:
        if exc.code == 404:
            return False  # not registered (yet)
        raise
    return any(c["type"] == "Ready" and c["status"] == "True" for c in conditions)


def _lease_seconds(cluster: LocalCluster, node: str) -> int:
    path = f"/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases/{node}"
    return int(_get(cluster, path)["spec"]["leaseDurationSeconds"])


def _plans(cluster: LocalCluster) -> list[tuple[int, float, float]]:
    """The plans the agent adopted, in order (its log: agent/session.py)."""
    return [plan for _, plan in _plans_taken(cluster)]


def _plans_taken(cluster: LocalCluster) -> list[tuple[float, tuple[int, float, float]]]:
    """The plans the agent adopted, in order, with when (the log line's time, Unix)."""
    log = (cluster.workdir / "agent-steady.log").read_text(errors="replace")
    out = []
    for stamp, n, i, lease in PLAN.findall(log):
        at = datetime.strptime(stamp, "%Y-%m-%d %H:%M:%S,%f").timestamp()
        out.append((at, (int(n), float(i), float(lease))))
    return out


class _ReadyWatch(threading.Thread):
    """Looks at the node's Ready condition every 0.1 s; remembers any look that was not."""

    def __init__(self, cluster: LocalCluster, node: str) -> None:
        super().__init__(daemon=True)
        self.cluster, self.node = cluster, node
        self.looks = 0
        self.not_ready: list[str] = []
        self.done = threading.Event()

    def run(self) -> None:
        while not self.done.wait(0.1):
            try:
                ready = _ready(self.cluster, self.node)
            except OSError:  # a slow answer on a busy machine is no verdict
                continue
            self.looks += 1
            if not ready:
                self.not_ready.append(time.strftime("%H:%M:%S"))


def test_a_stretched_plan_shrinks_within_the_session_and_the_node_stays_ready(
    cluster: LocalCluster,
) -> None:
    cluster.start_master(
        "--insecure",
        "--no-lb",
        "--heartbeat-interval",
        "4",
        "--lease-seconds",
        "6",
        "--max-heartbeats-per-second",
        "2",
    )
    node = cluster.start_agent("steady")
    wait_for(f"{node} Ready", lambda: _ready(cluster, node), 60)
    watch = _ReadyWatch(cluster, node)
    watch.start()
    try:
        ghosts = [f"it-{cluster.run_id}-ghost{i}" for i in range(GHOSTS)]
        with grpc.insecure_channel(cluster.master_address) as channel:
            stub = node_pb2_grpc.NodeServiceStub(channel)
            for ghost in ghosts:
                size = node_pb2.Resources(cpu_millis=1000, memory_bytes=2**30)
                info = node_pb2.NodeInfo(
                    name=ghost, address="127.0.0.1", capacity=size, allocatable=size
                )
                stub.RegisterNode(node_pb2.RegisterNodeRequest(node=info), timeout=30)

        # 16 nodes, 2 beats a second: the next ack stretches the agent's plan.
        stretched = wait_for("a stretched plan", lambda: _plans(cluster), 60)[-1]
        assert stretched[1] >= 8.0, stretched
        assert _lease_seconds(cluster, node) >= 10
        print(f"stretched: plan {stretched[0]}, every {stretched[1]:g}s, lease {stretched[2]:g}s")

        for ghost in ghosts:
            request = urllib.request.Request(
                f"{cluster.api_url}/api/v1/nodes/{ghost}", method="DELETE"
            )
            urllib.request.urlopen(request, timeout=30).close()
        deleted = time.monotonic()

        # One node: 4 s beats, offered with an ack once the plan has held 15 s, confirmed
        # by a heartbeat at once, judged by from that heartbeat on.
        def shrunk() -> tuple[float, tuple[int, float, float]] | None:
            last = _plans_taken(cluster)[-1]
            return last if last[1][1] < stretched[1] else None

        taken, plan = wait_for("a shorter plan in the same session", shrunk, 150, 0.05)
        print(
            f"shrunk {time.monotonic() - deleted:.1f}s after the deletes: plan {plan[0]}, "
            f"every {plan[1]:g}s, lease {plan[2]:g}s"
        )
        assert plan[1] == 4.0 and plan[0] > stretched[0]
        wait_for(
            "the master judging by the shorter lease",
            lambda: _lease_seconds(cluster, node) <= plan[2] + 1,
            3 * stretched[2],
            0.1,
        )
        judged = time.monotonic()
        confirmed = time.time() - taken
        print(f"the master judges by the shorter lease {confirmed:.2f}s after the agent took it")
        assert confirmed < CONFIRMED_WITHIN, confirmed
        # Judged by the short lease now: the node stays Ready only if the agent beats by
        # the short interval.
        wait_for("four short leases", lambda: time.monotonic() - judged >= 4 * plan[2], 60)
        assert _ready(cluster, node)
    finally:
        watch.done.set()
        watch.join(timeout=15)

    log = (cluster.workdir / "agent-steady.log").read_text(errors="replace")
    assert log.count(f"registered node {node}") == 1, log[-3000:]  # one session throughout
    assert "fenc" not in log.lower(), log[-3000:]
    assert watch.looks > 100
    assert watch.not_ready == [], watch.not_ready
    events = _get(cluster, "/api/v1/namespaces/default/events")["items"]
    mine = [e for e in events if e.get("involvedObject", {}).get("name") == node]
    assert not [e for e in mine if "NotReady" in e.get("reason", "")], mine
