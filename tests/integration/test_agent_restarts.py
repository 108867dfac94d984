"""A restarting agent costs no pod: the master tells a stopped agent from a dead machine.

Real master, real agents, real containers. An agent that is away longer than
its lease (a busy machine, an upgrade, a crash of the agent alone) leaves its
containers running; the master sees its session end and its pods still answer
its probe, so the node is Unknown — not NotReady — and nothing is replaced.
All agents away at once is the same, with evictions paused besides. The
counterpart, a dead machine whose pods are gone too, is still replaced within
seconds (test_self_healing.py).

Each test waits for the master to show the node Unknown, which proves the
agent was silent for longer than its 3 s lease, before starting it again.
"""

from __future__ import annotations

import signal
from pathlib import Path
from typing import Any

from tests.integration.cluster import LocalCluster, wait_for
from tests.integration.test_self_healing import (
    _engine_running,
    _events,
    _full_strength,
    _restart_counts,
    _running_pods,
    _two_nodes_with,
    _wait_nodes_ready,
)


def _condition(cluster: LocalCluster, node: str) -> str:
    item = cluster.get_json("nodes", node)
    ready = [c for c in item["status"]["conditions"] if c["type"] == "Ready"]
    return str(ready[0]["status"]) if ready else ""


def _inventory(cluster: LocalCluster) -> set[tuple[str, str]]:
    return {(p["metadata"]["name"], p["metadata"]["uid"]) for p in cluster.pods()}


def _ids(cluster: LocalCluster) -> list[str]:
    return sorted(c["Id"] for c in _engine_running(cluster))


def _assert_nothing_replaced(
    cluster: LocalCluster, pods: set[tuple[str, str]], ids: list[str], restarts: dict[str, Any]
) -> None:
    wait_for("4 pods running", lambda: len(_running_pods(cluster, "web")) == 4, 30)
    assert _inventory(cluster) == pods
    assert _ids(cluster) == ids
    assert _restart_counts(cluster) == restarts
    assert _full_strength(cluster, "web", 4)
    assert "Rescheduled" not in _events(cluster)


def test_an_agent_away_longer_than_its_lease_keeps_its_pods(
    cluster: LocalCluster, tmp_path: Path
) -> None:
    n1, n2 = _two_nodes_with(cluster, tmp_path, "web", 4)
    pods, ids, restarts = _inventory(cluster), _ids(cluster), _restart_counts(cluster)

    cluster.kill(cluster.agents[n1], signal.SIGKILL)  # the agent alone; its containers run on
    wait_for(
        "n1 Unknown: silent beyond its lease", lambda: _condition(cluster, n1) == "Unknown", 60
    )
    assert _condition(cluster, n2) == "True"
    cluster.start_agent("n1")

    _wait_nodes_ready(cluster, n1, n2)
    _assert_nothing_replaced(cluster, pods, ids, restarts)
    assert "its pods still answer" in _events(cluster)


def test_all_agents_restarted_at_once_replace_no_pod(cluster: LocalCluster, tmp_path: Path) -> None:
    n1, n2 = _two_nodes_with(cluster, tmp_path, "web", 4)
    pods, ids, restarts = _inventory(cluster), _ids(cluster), _restart_counts(cluster)

    for node in (n1, n2):
        cluster.kill(cluster.agents[node], signal.SIGTERM)
    wait_for(
        "both nodes Unknown",
        lambda: _condition(cluster, n1) == _condition(cluster, n2) == "Unknown",
        60,
    )
    cluster.start_agent("n1")
    cluster.start_agent("n2")

    _wait_nodes_ready(cluster, n1, n2)
    _assert_nothing_replaced(cluster, pods, ids, restarts)
    events = _events(cluster)
    assert "EvictionsPaused" in events and "EvictionsResumed" in events
