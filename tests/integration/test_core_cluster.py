"""Issue 2 end to end on real Docker: master + two agents over gRPC, the seed deployment.

apply the seed -> 3 nginx containers spread over both nodes and serving; re-apply
with replicas 5 -> 5; `docker kill` one -> back to 5 (same pod, restarted by its
agent); master killed with -9 and restarted -> nothing lost, no container
restarted; delete -> no containers left.
"""

from __future__ import annotations

import signal
import urllib.request
from collections import Counter
from pathlib import Path

import pytest

from tests.integration.cluster import LocalCluster, wait_for
from tests.support import SEED

pytestmark = pytest.mark.integration


def _running(cluster: LocalCluster) -> list[dict[str, object]]:
    return [
        p
        for p in cluster.pods()
        if p["status"].get("phase") == "Running" and not p["metadata"].get("deletionTimestamp")
    ]


def _wait_running(cluster: LocalCluster, n: int) -> list[dict[str, object]]:
    def check() -> list[dict[str, object]] | None:
        pods = _running(cluster)
        containers = cluster.containers()
        ok = len(pods) == n and len(cluster.pods()) == n and len(containers) == n
        return pods if ok else None

    return wait_for(f"{n} running pods and containers", check, timeout=90)


def _get(url: str) -> str:
    with urllib.request.urlopen(url, timeout=5) as resp:
        assert resp.status == 200
        return str(resp.read().decode())


def test_seed_deployment_runs_scales_heals_and_survives_a_master_restart(
    cluster: LocalCluster, tmp_path: Path
) -> None:
    cluster.start_master()
    n1, n2 = cluster.start_agent("n1"), cluster.start_agent("n2")
    wait_for(
        "two Ready nodes",
        lambda: (
            len(
                [
                    n
                    for n in cluster.get_json("nodes")["items"]
                    if any(
                        c["type"] == "Ready" and c["status"] == "True"
                        for c in n["status"]["conditions"]
                    )
                ]
            )
            == 2
        ),
    )

    # apply the seed, unchanged -> 3 running, spread over both nodes, serving nginx
    out = cluster.cli("apply", "-f", str(SEED / "deployment.yaml")).stdout
    assert "deployment.apps/my-web-app-deployment created" in out
    pods = _wait_running(cluster, 3)
    per_node = Counter(str(p["spec"]["nodeName"]) for p in pods)  # type: ignore[index]
    assert set(per_node) == {n1, n2}, per_node
    for pod in pods:
        endpoint = pod["status"]["endpoints"][0]  # type: ignore[index]
        assert endpoint.startswith("127.0.0.1:")
        assert "Welcome to nginx!" in _get(f"http://{endpoint}/")
    for c in cluster.containers():
        assert c.labels["pinnace.node"] in (n1, n2)
        assert c.labels["pinnace.pod"] in {p["metadata"]["name"] for p in pods}  # type: ignore[index]

    # re-apply with replicas 5 -> 5
    five = tmp_path / "deployment.yaml"
    five.write_text((SEED / "deployment.yaml").read_text().replace("replicas: 3", "replicas: 5"))
    assert "configured" in cluster.cli("apply", "-f", str(five)).stdout
    pods = _wait_running(cluster, 5)
    assert "unchanged" in cluster.cli("apply", "-f", str(five)).stdout

    # docker kill one container -> the same pod runs again, restarted by its agent
    victim = cluster.containers()[0]
    victim_pod = victim.labels["pinnace.pod"]
    victim.kill()

    def restarted() -> bool:
        pod = cluster.get_json("pods", victim_pod)
        statuses = pod["status"].get("containerStatuses", [])
        return bool(pod["status"]["phase"] == "Running" and statuses[0]["restartCount"] >= 1)

    wait_for("the killed container to run again", restarted, timeout=30)
    pods = _wait_running(cluster, 5)
    assert victim_pod in {p["metadata"]["name"] for p in pods}  # type: ignore[index]

    # master killed with -9 and restarted on the same address -> nothing lost or restarted
    before_ids = sorted(c.id for c in cluster.containers())
    before_pods = sorted(p["metadata"]["name"] for p in cluster.pods())
    port = int(cluster.master_address.rsplit(":", 1)[1])
    cluster.kill_master()
    cluster.start_master(port=port)
    wait_for(
        "both nodes to reconnect",
        lambda: all(
            any(c["type"] == "Ready" and c["status"] == "True" for c in n["status"]["conditions"])
            for n in cluster.get_json("nodes")["items"]
        ),
    )
    dep = cluster.get_json("deployments", "my-web-app-deployment")
    assert dep["spec"]["replicas"] == 5
    pods = _wait_running(cluster, 5)
    assert sorted(p["metadata"]["name"] for p in pods) == before_pods  # type: ignore[index]
    assert sorted(c.id for c in cluster.containers()) == before_ids

    # delete -> no containers left, no pods left
    out = cluster.cli("delete", "-f", str(five)).stdout
    assert 'deployment.apps "my-web-app-deployment" deleted' in out
    wait_for("all containers gone", lambda: not cluster.containers(running_only=False), 60)
    wait_for("all pods gone", lambda: not cluster.pods(), 30)
    for proc in cluster.agents.values():
        cluster.kill(proc, signal.SIGTERM)


def test_unreachable_master_is_one_sentence(cluster: LocalCluster) -> None:
    cluster.master_address = "127.0.0.1:1"
    result = cluster.cli("get", "pods", check=False)
    assert result.returncode == 1
    assert "cannot reach the pinnace master at 127.0.0.1:1" in result.stderr
    assert "Traceback" not in result.stderr
