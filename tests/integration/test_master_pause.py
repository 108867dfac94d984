"""A master hiccup never stops the workloads: SIGSTOP of the master under traffic.

Real master, two real agents, real HAProxy and containers. The master is frozen
(`kill -STOP`) for 6 s and then for 30 s — a VM pause, a swap storm — while
requests stream through the load balancer. The agents all lose the master at
once; their witnesses agree the master is the problem, so none fences. The
resumed master notices its own stall and gives every node time to be heard
from before judging any. Nothing is replaced and no request fails.
"""

from __future__ import annotations

import signal
import time
from typing import Any

import pytest

from tests.integration.cluster import LocalCluster, wait_for
from tests.integration.test_load_balancer import _ready_pods, _start, steady_load
from tests.support import SEED, require_haproxy

pytestmark = pytest.mark.integration


@pytest.fixture(autouse=True)
def _need_haproxy() -> None:
    require_haproxy()


def _inventory(cluster: LocalCluster) -> set[tuple[str, str]]:
    return {(p["metadata"]["name"], p["metadata"]["uid"]) for p in cluster.pods()}


def _container_ids(cluster: LocalCluster) -> set[str]:
    return {c.id for c in cluster.containers()}


def _nodes_ready(cluster: LocalCluster) -> bool:
    items: list[Any] = cluster.get_json("nodes")["items"]
    return len(items) == 2 and all(
        c["status"] == "True"
        for n in items
        for c in n["status"]["conditions"]
        if c["type"] == "Ready"
    )


def test_a_master_paused_6_s_and_30_s_replaces_nothing_and_fails_no_request(
    cluster: LocalCluster,
) -> None:
    url = _start(cluster)
    cluster.cli("apply", "-f", str(SEED))
    cluster.cli("scale", "deployment", "my-web-app-deployment", "--replicas", "4")
    _ready_pods(cluster, 4)
    master = cluster.master_proc
    assert master is not None

    with steady_load(url) as load:
        load.served_after(0, 50)
        for seconds in (6, 30):
            pods, ids = _inventory(cluster), _container_ids(cluster)
            master.send_signal(signal.SIGSTOP)
            try:
                time.sleep(seconds)  # the fault itself: the master frozen this long
            finally:
                master.send_signal(signal.SIGCONT)
            wait_for(f"both nodes Ready after a {seconds} s pause", lambda: _nodes_ready(cluster))
            _ready_pods(cluster, 4)
            load.served_after(load.ok, 200)
            assert _inventory(cluster) == pods, f"pods replaced after a {seconds} s pause"
            assert _container_ids(cluster) == ids, f"containers replaced after {seconds} s"

    assert load.failures == [], f"{len(load.failures)} failed of {load.ok + len(load.failures)}"
    events = cluster.cli("get", "events").stdout
    assert "MasterStalled" in events
    assert "Rescheduled" not in events and "Fenced" not in events
