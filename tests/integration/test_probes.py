"""Readiness and liveness probes on real Docker: the real master and agent, and a pod network.

pinnace/httpd serves / and /healthz; any other path is a 404. Through the real
master (no load balancer) and one agent publishing on 127.0.0.1:
- a pod whose readiness probe gets a 404 runs but stays 0/1 ready, saying why;
- a pod whose probes pass (HTTP readiness on /healthz, exec liveness `cat`) is
  ready and never restarted;
- a pod whose liveness probe fails (exec `false`) is restarted again and again;
- a TCP probe of a port nothing listens on fails (the agent on the host probes the
  container's own IP, so no port proxy can accept in the container's place).
With `--pod-network` (a fake master drives the agent) the probes go to the
container's own IP on that network, and the verdicts are the same.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from protos import node_pb2 as pb
from tests.integration.cluster import LocalCluster, wait_for
from tests.integration.test_agent_docker import IMAGE, Agents, agents
from tests.support import remove_container
from tests.unit.test_agent_fake_master import FakeMaster, eventually, web_assignment

pytestmark = pytest.mark.integration
__all__ = ["agents"]  # the fixture, imported so pytest finds it here


def deployment(name: str, **probes: Any) -> dict[str, Any]:
    container: dict[str, Any] = {
        "name": "web",
        "image": IMAGE,
        "imagePullPolicy": "Never",
        "ports": [{"containerPort": 80, "name": "http"}],
        **probes,
    }
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name},
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": {"app": name}},
            "template": {
                "metadata": {"labels": {"app": name}},
                "spec": {"containers": [container], "terminationGracePeriodSeconds": 2},
            },
        },
    }


FAST = {"periodSeconds": 1, "failureThreshold": 1}
# The probes that must pass all along: Kubernetes' 1 s timeout let a docker exec slowed by a
# loaded machine (load 30) fail the healthy pod's liveness probe and restart it 3 times.
PATIENT = {**FAST, "timeoutSeconds": 30}


def pod_of(cluster: LocalCluster, deployment_name: str) -> dict[str, Any] | None:
    for pod in cluster.pods():
        if pod["metadata"]["name"].startswith(deployment_name + "-"):
            return pod
    return None


def container_status(pod: dict[str, Any] | None) -> dict[str, Any]:
    statuses = (pod or {}).get("status", {}).get("containerStatuses") or [{}]
    return dict(statuses[0])


def test_readiness_gates_ready_and_liveness_restarts(cluster: LocalCluster, tmp_path: Path) -> None:
    cluster.start_master("--no-lb")
    cluster.start_agent("n1")
    manifest = tmp_path / "probes.yaml"
    manifest.write_text(
        yaml.safe_dump_all(
            [
                deployment(
                    "not-ready",
                    readinessProbe={"httpGet": {"path": "/missing", "port": "http"}, **FAST},
                ),
                deployment(
                    "healthy",
                    readinessProbe={"httpGet": {"path": "/healthz", "port": 80}, **PATIENT},
                    livenessProbe={"exec": {"command": ["cat", "/www/healthz"]}, **PATIENT},
                ),
                deployment(
                    "dies",
                    livenessProbe={"exec": {"command": ["false"]}, **FAST},
                ),
                # Nothing listens on 81: the probe must see that, not a proxy's accept.
                deployment(
                    "closed-port",
                    readinessProbe={"tcpSocket": {"port": 81}, **FAST},
                ),
            ]
        )
    )

    cluster.cli("apply", "-f", str(manifest))

    healthy = wait_for(
        "the healthy pod ready",
        lambda: (p := pod_of(cluster, "healthy")) and container_status(p).get("ready") and p,
        timeout=60,
    )
    not_ready = wait_for(
        "the not-ready pod running, saying its readiness probe fails",
        lambda: (
            (p := pod_of(cluster, "not-ready"))
            and p["status"].get("phase") == "Running"
            # (the first probes may find httpd not listening yet: wait for its answer)
            and p["status"].get("message", "").endswith("statuscode: 404")
            and p
        ),
        timeout=60,
    )
    assert not_ready["status"]["message"] == (
        "container web: Readiness probe failed: HTTP probe failed with statuscode: 404"
    )
    assert container_status(not_ready)["ready"] is False
    closed = wait_for(
        "the pod probed on a closed port running, saying why it is not ready",
        lambda: (
            (p := pod_of(cluster, "closed-port"))
            and p["status"].get("phase") == "Running"
            and "TCP probe failed" in p["status"].get("message", "")
            and p
        ),
        timeout=60,
    )
    assert closed["status"]["message"].endswith(":81: connection refused")
    assert container_status(closed)["ready"] is False
    ready_condition = next(c for c in not_ready["status"]["conditions"] if c["type"] == "Ready")
    assert ready_condition["status"] == "False"
    # Restarts are what a failing liveness probe causes, again and again (with backoff).
    wait_for(
        "the pod failing its liveness probe restarted twice",
        lambda: container_status(pod_of(cluster, "dies")).get("restartCount", 0) >= 2,
        timeout=90,
    )
    table = cluster.cli("get", "pods").stdout
    row = next(line for line in table.splitlines() if line.startswith("not-ready-"))
    assert row.split()[1:3] == ["0/1", "Running"], table
    # The healthy pod's probes (HTTP readiness, exec liveness) passed all along.
    healthy = pod_of(cluster, "healthy") or healthy
    assert container_status(healthy)["ready"] is True
    assert container_status(healthy)["restartCount"] == 0
    assert container_status(pod_of(cluster, "not-ready"))["restartCount"] == 0
    # -o yaml shows the probes back as a manifest spells them.
    spec = yaml.safe_load(cluster.cli("get", "deployment", "healthy", "-o", "yaml").stdout)
    probe = spec["spec"]["template"]["spec"]["containers"][0]["readinessProbe"]
    assert probe["httpGet"] == {"path": "/healthz", "port": 80, "scheme": "HTTP"}
    assert (probe["periodSeconds"], probe["failureThreshold"]) == (1, 1)


@pytest.fixture
def pod_network(docker_client: Any) -> Iterator[str]:
    network = docker_client.networks.create(f"pinnace-test-probes-{uuid.uuid4().hex[:6]}")
    try:
        yield str(network.name)
    finally:
        network.reload()
        for container in network.containers:  # left only when the test failed midway
            remove_container(container.client, container.id)
        network.remove()


def probed(name: str, path: str) -> pb.PodAssignment:
    assignment = web_assignment(name, IMAGE)
    container = assignment.spec.containers[0]
    container.readiness_probe.CopyFrom(
        pb.Probe(kind="httpGet", port="80", path=path, period_seconds=1, failure_threshold=1)
    )
    return assignment


def test_on_a_pod_network_probes_reach_the_container_ip(pod_network: str, agents: Agents) -> None:
    # pod_network first: it is torn down after the agent and its containers are gone.
    async def scenario() -> None:
        master = FakeMaster(heartbeat=0.2, lease=10.0)
        address = await master.start()
        node = agents.node_name("probe-net")
        try:
            agents.start(address, node, "--pod-network", pod_network)
            await eventually(lambda: master.connected(node), 60, "the agent's session")
            master.assign(node, probed("good", "/healthz"), probed("bad", "/missing"))

            def report(pod: str, ready: bool) -> pb.PodStatusReport | None:
                r = master.status(node, pod)
                if r is None or r.phase != "Running" or r.ready != ready:
                    return None
                # Not ready counts once httpd has answered the probe (not merely not yet
                # run, or run before httpd listened).
                return r if ready or r.message.endswith("statuscode: 404") else None

            good = await eventually(lambda: report("good", True), 30, "good ready")
            bad = await eventually(lambda: report("bad", False), 30, "bad not ready")

            assert good.host_ip and not good.host_ip.startswith("127.")
            assert bad.message == (
                "container web: Readiness probe failed: HTTP probe failed with statuscode: 404"
            )
        finally:
            await master.stop()

    asyncio.run(scenario())
