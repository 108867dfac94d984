"""cordon / uncordon / drain on real processes and Docker: a node emptied with its pods kept up.

Two agents, a deployment of 4; `drain n1` cordons n1 and moves its pods to n2 one
at a time (the deployment's budget), so the deployment never has fewer than 3
ready replicas while it runs; the node shows SchedulingDisabled and takes no new
pod until `uncordon`.
"""

from __future__ import annotations

import subprocess
import sys
import threading
from pathlib import Path

import pytest

from tests.integration.cluster import REPO, LocalCluster, wait_for

pytestmark = pytest.mark.integration

DEPLOYMENT = """\
apiVersion: apps/v1
kind: Deployment
metadata:
  name: drained
spec:
  replicas: {replicas}
  selector:
    matchLabels: {{app: drained}}
  template:
    metadata:
      labels: {{app: drained}}
    spec:
      containers:
        - name: web
          image: pinnace/httpd:latest
          imagePullPolicy: IfNotPresent
          ports: [{{containerPort: 8080}}]
"""


def _ready_on(cluster: LocalCluster) -> dict[str, int]:
    counts: dict[str, int] = {}
    for p in cluster.pods():
        if p["status"].get("phase") == "Running" and not p["metadata"].get("deletionTimestamp"):
            ready = all(c.get("ready") for c in p["status"].get("containerStatuses", []))
            if ready:
                node = str(p["spec"].get("nodeName", ""))
                counts[node] = counts.get(node, 0) + 1
    return counts


def _statuses(cluster: LocalCluster, expected: int) -> str:
    """The STATUS column of `get nodes`, or NotReady while fewer than `expected` nodes exist."""
    rows = cluster.cli("get", "nodes").stdout.splitlines()[1:]
    return " ".join(r.split()[1] for r in rows) if len(rows) == expected else "NotReady"


def _node_status(cluster: LocalCluster, node: str) -> str:
    out = cluster.cli("get", "nodes").stdout
    return next(line.split()[1] for line in out.splitlines() if line.startswith(node + " "))


def test_drain_moves_every_pod_keeping_the_deployment_up_then_uncordon(
    cluster: LocalCluster, tmp_path: Path
) -> None:
    cluster.start_master("--no-lb")
    n1, n2 = cluster.start_agent("n1"), cluster.start_agent("n2")
    wait_for("two Ready nodes", lambda: "NotReady" not in _statuses(cluster, 2), timeout=30)
    manifest = tmp_path / "drained.yaml"
    manifest.write_text(DEPLOYMENT.format(replicas=4))
    cluster.cli("apply", "-f", str(manifest))
    wait_for(
        "4 ready pods on both nodes",
        lambda: (lambda c: sum(c.values()) == 4 and c.get(n1, 0) >= 1)(_ready_on(cluster)),
        timeout=90,
    )

    # Watch readiness while the drain runs: the budget keeps >= 3 of 4 ready.
    lowest = [4]
    done = threading.Event()

    def sample() -> None:
        while not done.is_set():
            lowest[0] = min(lowest[0], sum(_ready_on(cluster).values()))

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    try:
        drain = subprocess.run(
            [sys.executable, "-m", "master.cli.main", "--master", cluster.master_address]
            + (["--insecure"] if cluster.insecure else [])
            + ["drain", n1, "--timeout", "120"],
            capture_output=True,
            text=True,
            env=cluster.env,
            cwd=REPO,
            timeout=150,
        )
    finally:
        done.set()
        sampler.join(timeout=30)

    assert drain.returncode == 0, drain.stderr
    lines = drain.stdout.splitlines()
    assert lines[0] == f"node/{n1} cordoned"
    assert lines[-1] == f"node/{n1} drained"
    assert any(line.startswith("evicting pod drained-") for line in lines)
    pods = cluster.pods()
    assert {p["spec"]["nodeName"] for p in pods} == {n2}
    wait_for(
        "n1's containers gone",
        lambda: not cluster.docker.containers.list(filters={"label": f"pinnace.node={n1}"}),
        timeout=30,
    )
    assert lowest[0] >= 3, f"the deployment fell to {lowest[0]} ready replicas during the drain"
    assert "SchedulingDisabled" in _node_status(cluster, n1)

    # Cordoned: a scale-up lands on n2 only; uncordon lets the next one land on n1.
    manifest.write_text(DEPLOYMENT.format(replicas=5))
    cluster.cli("apply", "-f", str(manifest))
    wait_for("5 ready on n2", lambda: _ready_on(cluster).get(n2, 0) == 5, timeout=60)
    assert cluster.cli("uncordon", n1).stdout.strip() == f"node/{n1} uncordoned"
    assert "SchedulingDisabled" not in _node_status(cluster, n1)
    manifest.write_text(DEPLOYMENT.format(replicas=7))
    cluster.cli("apply", "-f", str(manifest))
    wait_for("new pods on n1", lambda: _ready_on(cluster).get(n1, 0) >= 1, timeout=60)


def test_cordon_names_a_missing_node_and_says_when_nothing_changed(cluster: LocalCluster) -> None:
    cluster.start_master("--no-lb")
    n1 = cluster.start_agent("n1")
    wait_for("n1 registered", lambda: bool(cluster.get_json("nodes")["items"]), timeout=30)

    assert cluster.cli("cordon", n1).stdout.strip() == f"node/{n1} cordoned"
    assert cluster.cli("cordon", n1).stdout.strip() == f"node/{n1} already cordoned"
    missing = cluster.cli("drain", "nope", check=False)
    assert missing.returncode == 1
    assert missing.stderr.strip() == 'Error from server (NotFound): nodes "nope" not found'
