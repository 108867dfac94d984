"""A cluster whose agent runs pods in sandboxes (what `pinnace agent` does by default): a
master and one agent as processes (LocalCluster, port 0), real Docker, the real CLI.

A two-container pod shares one holder's network namespace: its endpoints (the holder's
published ports) serve, `pinnace exec` in one container reaches the other on localhost, and
its hostname is the pod's name; a killed container runs again in the same sandbox; a
killed holder brings the pod back in a new one, each container counted as restarted once
more (as the kubelet counts them), also when the holder died while the agent was down (the
count kept by the pod's status at the master); a restarted agent adopts pods and holders as
they are; a deleted pod leaves no holder behind. `--no-pod-sandbox` runs the same pod without
a holder; so does an agent whose engine has no sandbox image, which says so in the pod's
events. A pod of one container runs without a holder by default (a holder costs about a
container start).
The runtime's side alone is tests/integration/test_pod_sandbox.py.
"""

from __future__ import annotations

import signal
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from agent.runtime.port import LABEL_STANDBY
from tests.integration.cluster import LocalCluster, wait_for

pytestmark = pytest.mark.integration

IMAGE = "pinnace/httpd:latest"
MANIFEST = f"""\
apiVersion: apps/v1
kind: Deployment
metadata:
  name: duo
spec:
  replicas: 1
  selector:
    matchLabels:
      app: duo
  template:
    metadata:
      labels:
        app: duo
    spec:
      terminationGracePeriodSeconds: 1
      containers:
      - name: web
        image: {IMAGE}
        env:
        - name: MESSAGE
          value: web
        ports:
        - containerPort: 80
        readinessProbe:
          httpGet:
            path: /healthz
            port: 80
          periodSeconds: 1
      - name: side
        image: {IMAGE}
        env:
        - name: PORT
          value: "8080"
        - name: MESSAGE
          value: side
        ports:
        - containerPort: 8080
"""


def _containers(cluster: LocalCluster, node: str) -> list[dict[str, Any]]:
    return list(cluster.docker.api.containers(all=True, filters={"label": f"pinnace.node={node}"}))


def _apps(cluster: LocalCluster, node: str) -> dict[str, dict[str, Any]]:
    """Running app containers by container name (holders carry no container label)."""
    return {
        c["Labels"]["pinnace.container"]: c
        for c in _containers(cluster, node)
        if "pinnace.container" in c["Labels"] and c["State"] == "running"
    }


def _holders(cluster: LocalCluster, node: str) -> list[dict[str, Any]]:
    return [c for c in _containers(cluster, node) if "pinnace.sandbox" in c["Labels"]]


def _pod(cluster: LocalCluster) -> dict[str, Any] | None:
    pods = [p for p in cluster.pods() if p["metadata"]["name"].startswith("duo-")]
    return pods[0] if len(pods) == 1 else None


def _serving(cluster: LocalCluster, restarts: int | None = None) -> dict[str, Any] | None:
    """The pod, once Running with both containers ready and two endpoints (and, when
    asked, that many restarts in all)."""
    pod = _pod(cluster)
    if pod is None or pod["status"].get("phase") != "Running":
        return None
    statuses = pod["status"].get("containerStatuses") or []
    if len(statuses) != 2 or not all(s.get("ready") for s in statuses):
        return None
    if restarts is not None and sum(s["restartCount"] for s in statuses) != restarts:
        return None
    return pod if len(pod["status"].get("endpoints") or []) == 2 else None


def _pages(pod: dict[str, Any]) -> set[str]:
    """What each endpoint serves: the MESSAGE line of its page."""
    found = set()
    for endpoint in pod["status"]["endpoints"]:
        with urllib.request.urlopen(f"http://{endpoint}/", timeout=5) as reply:
            page = reply.read().decode()
        found |= {m for m in ("web", "side") if f'<p id="message">{m}</p>' in page}
    return found


def test_a_pod_in_a_sandbox_serves_heals_and_goes(cluster: LocalCluster, tmp_path: Path) -> None:
    cluster.start_master()
    node = cluster.start_agent("n1")
    manifest = tmp_path / "duo.yaml"
    manifest.write_text(MANIFEST)
    cluster.cli("apply", "-f", str(manifest))
    pod = wait_for("the pod serving", _serving_of(cluster, 0), 90)
    name = pod["metadata"]["name"]
    (holder,) = _holders(cluster, node)
    assert {c["HostConfig"]["NetworkMode"] for c in _apps(cluster, node).values()} == {
        f"container:{holder['Id']}"
    }
    assert _pages(pod) == {"web", "side"}
    # One localhost: the side car reaches web on 127.0.0.1:80 (the agent's exec path).
    execed = cluster.cli("exec", name, "-c", "side", "--", "wget", "-qO-", "127.0.0.1:80/healthz")
    assert execed.stdout.strip() == "ok"
    # The pod's name as hostname, as Kubernetes gives it (not the holder's id).
    assert cluster.cli("exec", name, "-c", "web", "--", "hostname").stdout.strip() == name

    # A killed container runs again in the same sandbox, reached where it was.
    cluster.docker.api.kill(_apps(cluster, node)["web"]["Id"])
    again = wait_for("the pod serving after a kill", _serving_of(cluster, 1), 60)
    assert [h["Id"] for h in _holders(cluster, node)] == [holder["Id"]]
    assert again["status"]["endpoints"] == pod["status"]["endpoints"]
    assert _pages(again) == {"web", "side"}

    # A restarted agent adopts the pod and its holder as they are.
    running = {c: info["Id"] for c, info in _apps(cluster, node).items()}
    cluster.kill(cluster.agents[node], signal.SIGKILL)
    cluster.start_agent("n1")
    # Registered again with the pod (the master's view of node and pod is the old agent's
    # until then): only then has the new agent seen the pod's containers.
    log = cluster.workdir / "agent-n1.log"
    wait_for(
        "the new agent registered with the pod",
        lambda: log.read_text(errors="replace").count(f"registered node {node}") >= 2,
        60,
    )
    wait_for("the node Ready again", lambda: _ready(cluster, node), 60)
    adopted = wait_for("the pod serving after the agent's restart", _serving_of(cluster, 1), 60)
    assert {c: info["Id"] for c, info in _apps(cluster, node).items()} == running
    assert [h["Id"] for h in _holders(cluster, node)] == [holder["Id"]]
    assert _pages(adopted) == {"web", "side"}

    # A killed holder takes the pod's containers; the pod comes back in a new sandbox, and
    # each container made again counts as one more restart (1 + 2).
    cluster.docker.api.kill(holder["Id"])
    wait_for(
        "a new holder with both containers in it",
        lambda: _rejoined(cluster, node, holder["Id"]),
        60,
    )
    healed = wait_for("the pod serving in its new sandbox", _serving_of(cluster, 3), 60)
    assert _pages(healed) == {"web", "side"}

    # The holder dies while the agent is down: the restarted agent's first listing sweeps
    # the pod's containers before it ever saw them, and it counts on from the pod's status
    # at the master (3 + 2), as the kubelet does; it made them again from 0 before.
    (holder,) = _holders(cluster, node)
    cluster.kill(cluster.agents[node], signal.SIGKILL)
    cluster.docker.api.kill(holder["Id"])
    cluster.start_agent("n1")
    wait_for(
        "the new agent registered",
        lambda: log.read_text(errors="replace").count(f"registered node {node}") >= 3,
        60,
    )
    wait_for(
        "a new holder after the agent's restart",
        lambda: _rejoined(cluster, node, holder["Id"]),
        60,
    )
    recounted = wait_for("the pod serving, its count kept", _serving_of(cluster, 5), 60)
    assert _pages(recounted) == {"web", "side"}

    # A deleted pod leaves neither containers nor holder.
    cluster.cli("delete", "deployment", "duo")
    wait_for("nothing left on the node", lambda: not _containers(cluster, node), 60)


def _serving_of(cluster: LocalCluster, restarts: int | None) -> Any:
    return lambda: _serving(cluster, restarts)


def _ready(cluster: LocalCluster, node: str) -> bool:
    found = [n for n in cluster.get_json("nodes")["items"] if n["metadata"]["name"] == node]
    return bool(found) and any(
        c["type"] == "Ready" and c["status"] == "True" for c in found[0]["status"]["conditions"]
    )


def _rejoined(cluster: LocalCluster, node: str, old: str) -> bool:
    holders = _holders(cluster, node)
    if len(holders) != 1 or holders[0]["Id"] == old or holders[0]["State"] != "running":
        return False
    modes = {c["HostConfig"]["NetworkMode"] for c in _apps(cluster, node).values()}
    return len(_apps(cluster, node)) == 2 and modes == {f"container:{holders[0]['Id']}"}


def test_no_pod_sandbox_runs_the_pod_without_a_holder_and_the_same_hostname(
    cluster: LocalCluster, tmp_path: Path
) -> None:
    cluster.start_master()
    node = cluster.start_agent("n1", "--no-pod-sandbox")
    manifest = tmp_path / "duo.yaml"
    manifest.write_text(MANIFEST)
    cluster.cli("apply", "-f", str(manifest))
    pod = wait_for("the pod serving", _serving_of(cluster, 0), 90)
    name = pod["metadata"]["name"]

    assert _holders(cluster, node) == []
    assert not any(
        c["HostConfig"]["NetworkMode"].startswith("container:")
        for c in _apps(cluster, node).values()
    )
    assert _pages(pod) == {"web", "side"}
    for container in ("web", "side"):
        named = cluster.cli("exec", name, "-c", container, "--", "hostname").stdout.strip()
        assert named == name, container


SOLO = """\
apiVersion: apps/v1
kind: Deployment
metadata:
  name: solo
spec:
  replicas: 1
  selector:
    matchLabels:
      app: solo
  template:
    metadata:
      labels:
        app: solo
    spec:
      terminationGracePeriodSeconds: 1
      containers:
      - name: web
        image: pinnace/httpd:latest
        ports:
        - containerPort: 80
"""


def test_a_pod_of_one_container_runs_without_a_holder_by_default(
    cluster: LocalCluster, tmp_path: Path
) -> None:
    cluster.start_master()
    node = cluster.start_agent("n1")
    manifest = tmp_path / "solo.yaml"
    manifest.write_text(SOLO)
    cluster.cli("apply", "-f", str(manifest))

    def running() -> dict[str, Any] | None:
        pods = [p for p in cluster.pods() if p["metadata"]["name"].startswith("solo-")]
        ok = len(pods) == 1 and pods[0]["status"].get("phase") == "Running"
        return pods[0] if ok and pods[0]["status"].get("endpoints") else None

    pod = wait_for("the pod running with its endpoint", running, 90)
    name = pod["metadata"]["name"]
    # No sandbox holder: only, a second after it runs, its standby (made for its crash).
    assert [h for h in _holders(cluster, node) if LABEL_STANDBY not in h["Labels"]] == []
    (web,) = _apps(cluster, node).values()
    assert not web["HostConfig"]["NetworkMode"].startswith("container:")
    assert cluster.cli("exec", name, "--", "hostname").stdout.strip() == name
    (endpoint,) = pod["status"]["endpoints"]
    with urllib.request.urlopen(f"http://{endpoint}/healthz", timeout=5) as reply:
        assert reply.read().decode().strip() == "ok"


def test_without_the_sandbox_image_the_pod_runs_without_one_and_says_so(
    cluster: LocalCluster, tmp_path: Path
) -> None:
    cluster.start_master()
    absent = "pinnace/no-such-pause:never"
    node = cluster.start_agent("n1", f"--pod-sandbox-image={absent}")
    manifest = tmp_path / "duo.yaml"
    manifest.write_text(MANIFEST)
    cluster.cli("apply", "-f", str(manifest))
    pod = wait_for("the pod serving", _serving_of(cluster, 0), 90)
    name = pod["metadata"]["name"]

    assert _holders(cluster, node) == []
    assert _pages(pod) == {"web", "side"}

    def said() -> list[str]:
        return [
            e["message"]
            for e in cluster.get_json("events")["items"]
            if e["involvedObject"]["name"] == name and absent in e["message"]
        ]

    messages = wait_for("the pod's events saying so", said, 30)
    assert all("runs without a sandbox" in m for m in messages)
    log = (cluster.workdir / "agent-n1.log").read_text(errors="replace")
    assert log.count(f"the pod sandbox image {absent} is not present") == 1
