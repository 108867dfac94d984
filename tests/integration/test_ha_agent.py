"""An agent that knows three masters (`--master a,b,c`) joins through any of them over TLS
(one cluster CA and token list in etcd) and rides through the leader's kill -9: it
registers with the new leader, its containers keep running untouched (no fencing, no
restart), and the new leader neither replaces nor duplicates its pods. Every master's
own HAProxy serves the service from the shared state, and a steady load through a
follower's load balancer fails no request while the leader dies."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import docker
import pytest

from tests.integration.cluster import wait_for
from tests.integration.kube_helpers import wheel_kubectl
from tests.integration.masters import DEPLOYMENT, REPO
from tests.integration.test_leader_election import (  # noqa: F401
    NAMES,
    HaCluster,
    ha,
    start_ha,
    stop_ha,
)
from tests.integration.traffic import steady_load
from tests.support import remove_container, require_haproxy

SERVICE = """\
apiVersion: v1
kind: Service
metadata: {name: web}
spec:
  selector: {app: web}
  type: LoadBalancer
  ports: [{port: 80, targetPort: 80}]
---
"""
WEB = DEPLOYMENT.replace(
    "image: pinnace/httpd:latest",
    "image: pinnace/httpd:latest\n          ports: [{{containerPort: 80}}]",
)


@pytest.fixture(scope="module")
def ha_module(tmp_path_factory: pytest.TempPathFactory) -> Iterator[HaCluster]:
    """Three masters on three etcd members, each with its HAProxy on its own loopback
    address; services answer at their port + the offset (a free port for port 80)."""
    require_haproxy()
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        lb_port = int(s.getsockname()[1])
    cluster = start_ha(tmp_path_factory.mktemp("ha-lb"), lb_port_offset=lb_port - 80)
    try:
        yield cluster
    finally:
        stop_ha(cluster)


def lb_url(cluster: HaCluster, name: str) -> str:
    offset = cluster.masters.lb_port_offset
    assert offset is not None
    return f"http://{cluster.masters.lb_hosts[name]}:{80 + offset}/"


def serves(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as reply:
            return bool(reply.status == 200)
    except OSError:
        return False


@pytest.fixture
def agent(
    ha: HaCluster,  # noqa: F811
    tmp_path: Path,
    docker_client: docker.DockerClient,
) -> Iterator[str]:
    node = f"ha-{uuid.uuid4().hex[:6]}"
    # The token is made on the leader; the agent joins through a follower (listed first):
    # one cluster identity (CA, tokens) at every master.
    leader = ha.wait_leader()
    made = ha.masters.cli(leader.address, "token", "create", "--ttl", "1h")
    assert made.returncode == 0, made.stderr
    followers = [ha.masters.addresses[n] for n in NAMES if n != leader.name]
    everyone = ",".join([*followers, leader.address])
    log = (tmp_path / "agent.log").open("ab")
    proc = subprocess.Popen(
        [
            sys.executable, "-m", "agent", "--master", everyone, "--name", node,
            "--advertise-address", "127.0.0.1", "--token", made.stdout.strip(),
            "--metrics-listen", "", "--no-node-proxy", "--cluster-dns=none",
            "--state-dir", str(tmp_path / "agent-state"),
        ],
        stdout=log, stderr=log, cwd=REPO, env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )  # fmt: skip
    try:
        yield node
    finally:
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait(timeout=60)
        log.close()
        for c in docker_client.containers.list(all=True, filters={"label": f"pinnace.node={node}"}):
            remove_container(c.client, str(c.id))


def get(cluster: HaCluster, address: str, kind: str) -> list[dict[str, Any]]:
    result = cluster.masters.cli(address, "get", kind, "-o", "json")
    assert result.returncode == 0, result.stderr
    items: list[dict[str, Any]] = json.loads(result.stdout)["items"]
    return items


def running(cluster: HaCluster, address: str) -> list[str]:
    pods = get(cluster, address, "pods")
    return sorted(p["metadata"]["name"] for p in pods if p["status"].get("phase") == "Running")


def _pod_containers(client: docker.DockerClient, node: str, every: bool = False) -> list[Any]:
    """The pods' own containers on `node` (`every`: stopped ones too): not the standby
    holders the agent makes beside one-container pods once they run (a second later)."""
    labels = [f"pinnace.node={node}", "pinnace.container"]
    return list(client.containers.list(all=every, filters={"label": labels}))


def test_the_agent_follows_the_new_leader_and_its_pods_never_stop(
    ha: HaCluster,  # noqa: F811
    agent: str,
    docker_client: docker.DockerClient,
    tmp_path: Path,
) -> None:
    leader = ha.wait_leader()
    applied = ha.masters.cli(
        leader.address, "apply", "-f", "-", stdin=SERVICE + WEB.format(name="web", replicas=2)
    )
    assert applied.returncode == 0, applied.stderr
    wait_for("2 running pods", lambda: len(running(ha, leader.address)) == 2, timeout=90)
    pods = running(ha, leader.address)
    containers = _pod_containers(docker_client, agent)
    started = {c.id: c.attrs["State"]["StartedAt"] for c in containers}
    [node] = get(ha, leader.address, "nodes")
    rv_before = int(node["metadata"]["resourceVersion"])
    # Every master's HAProxy serves the service, the followers' from the state they mirror.
    for name in NAMES:
        url = lb_url(ha, name)
        wait_for(f"{name}'s load balancer to serve", lambda u=url: serves(u))  # type: ignore[misc]
    survivor = next(n for n in NAMES if n != leader.name)
    # Logs and exec reach the agent's session, which the leader holds, from a follower too.
    follower = ha.masters.addresses[survivor]
    logs = ha.masters.cli(follower, "logs", pods[0])
    execed = ha.masters.cli(follower, "exec", pods[0], "--", "echo", "through a follower")
    status, text = ha.masters.kube(
        survivor, "GET", f"/api/v1/namespaces/default/pods/{pods[0]}/log?tailLines=5"
    )
    assert logs.returncode == 0, logs.stderr
    assert status == 200, text
    assert (execed.returncode, execed.stdout) == (0, "through a follower\n"), execed.stderr
    # kubectl exec (a WebSocket) through a follower's Kubernetes API.
    kubeconfig = tmp_path / "kubeconfig"
    made = ha.masters.cli(follower, "kubeconfig", "--server", ha.masters.api_urls[survivor])
    kubeconfig.write_text(made.stdout)
    kubectl = subprocess.run(
        [wheel_kubectl(), "exec", pods[0], "--", "echo", "via the API"],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "KUBECONFIG": str(kubeconfig), "HOME": str(tmp_path)},
        check=False,
    )
    assert (kubectl.returncode, kubectl.stdout) == (0, "via the API\n"), kubectl.stderr

    with steady_load(lb_url(ha, survivor), rate=100) as load:
        killed_at = time.monotonic()
        sent_at_kill = load.sent
        ha.masters.kill(leader.name)
        new = ha.wait_leader(other_than=leader.name)

        def registered_again() -> bool:
            [n] = get(ha, new.address, "nodes")
            return int(n["metadata"]["resourceVersion"]) > rv_before

        wait_for("the agent to register with the new leader", registered_again, timeout=60)
        back = time.monotonic() - killed_at
        sent_at_back = load.sent
        # Requests went on through the whole failover and after it (how many a second is
        # the machine's business, not this test's).
        wait_for("requests after the failover", lambda: load.sent >= sent_at_back + 50, 60)
    print(f"agent registered with the new leader {back:.2f}s after kill -9")

    load.check()
    # A follower's load balancer serves; it leaves the services' status to the leader.
    assert all("programming HAProxy failed" not in ha.masters.log(n) for n in NAMES)
    assert sent_at_back > sent_at_kill, (sent_at_kill, sent_at_back)

    # Same pods, still running, on the same containers, never restarted, fenced or duplicated.
    assert running(ha, new.address) == pods
    assert sorted(p["metadata"]["name"] for p in get(ha, new.address, "pods")) == pods
    now = _pod_containers(docker_client, agent, every=True)
    assert {c.id: c.attrs["State"]["StartedAt"] for c in now} == started
    assert all(
        p["status"]["containerStatuses"][0]["restartCount"] == 0
        for p in get(ha, new.address, "pods")
    )

    # etcd loses quorum: writes are refused in one sentence, reads are served, the pods and
    # the load balancers go on (longer than a node lease), and all recovers on its own.
    follower_after = next(
        ha.masters.addresses[n] for n in NAMES if n not in (leader.name, new.name)
    )
    lost = [m for m in ha.etcd.members if m.process is not None][:2]
    with steady_load(lb_url(ha, survivor), rate=100) as load:
        for member in lost:
            ha.etcd.kill(member)
        lost_at = time.monotonic()
        refused = ha.masters.cli(new.address, "scale", "deployment", "web", "--replicas", "3")
        read = get(ha, follower_after, "pods")
        while time.monotonic() - lost_at < 8.0:  # a node lease is 6 s under --leader-elect
            up = _pod_containers(docker_client, agent)
            assert {c.id for c in up} == set(started), "a container stopped without quorum"
            time.sleep(0.5)
        for member in lost:
            ha.etcd.start_member(member)
        ha.etcd.wait_healthy(timeout=30)

        def scaled() -> bool:
            done = ha.masters.cli(follower_after, "scale", "deployment", "web", "--replicas", "2")
            return done.returncode == 0

        wait_for("a write once quorum is back", scaled, timeout=30)
    print(f"quorum lost and back: {time.monotonic() - lost_at:.1f}s")
    assert refused.returncode == 1
    assert refused.stderr.startswith("error: nothing was changed: "), refused.stderr
    assert "etcd" in refused.stderr and "Traceback" not in refused.stderr
    assert sorted(p["metadata"]["name"] for p in read) == pods
    load.check()
    after = _pod_containers(docker_client, agent, every=True)
    assert {c.id: c.attrs["State"]["StartedAt"] for c in after} == started
    assert running(ha, follower_after) == pods
