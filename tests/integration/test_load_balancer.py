"""Issue 4 on a real HAProxy and real Docker: services, zero-failure disruptions, rollouts.

Traffic goes only to 127.0.0.1 and the tests' own containers: HAProxy binds 127.0.0.1
on a free port (the master's --lb-port-offset maps the seed service's port 80 onto it),
pods publish on 127.0.0.1, and HAProxy reaches them at their own IPs on this machine's
bridge (master/lb/endpoints.py lb_address).
"""

from __future__ import annotations

import re
import signal
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from agent.nodeproxy.process import command
from agent.runtime.port import LABEL_SANDBOX
from master.lb.process import LbPaths
from tests.integration.cluster import LocalCluster, wait_for
from tests.integration.traffic import HOSTNAME, steady_load
from tests.support import SEED, free_port, network_settings, remove_container, require_haproxy

pytestmark = pytest.mark.integration


@pytest.fixture(autouse=True)
def _need_haproxy() -> None:
    require_haproxy()


def _start(cluster: LocalCluster) -> str:
    """Master + two agents; returns the LB URL of the seed service."""
    port = free_port()
    cluster.start_master("--lb-port-offset", str(port - 80))
    cluster.start_agent("n1")
    cluster.start_agent("n2")
    wait_for(
        "two Ready nodes",
        lambda: (
            sum(
                1
                for n in cluster.get_json("nodes")["items"]
                for c in n["status"]["conditions"]
                if c["type"] == "Ready" and c["status"] == "True"
            )
            == 2
        ),
    )
    return f"http://127.0.0.1:{port}/"


def _fetch(url: str) -> str:
    with urllib.request.urlopen(url, timeout=5) as resp:
        assert resp.status == 200
        return str(resp.read().decode())


def _ready_pods(cluster: LocalCluster, n: int, image: str | None = None) -> list[dict[str, object]]:
    def check() -> list[dict[str, object]] | None:
        pods = cluster.pods()
        ok = [
            p
            for p in pods
            if p["status"].get("phase") == "Running"
            and not p["metadata"].get("deletionTimestamp")
            and all(c.get("ready") for c in p["status"].get("containerStatuses", []))
            and (image is None or p["spec"]["containers"][0]["image"] == image)
        ]
        return ok if len(ok) == n and len(pods) == n else None

    return wait_for(f"{n} ready pods", check, timeout=90)


def test_the_seed_service_reaches_every_pod_through_haproxy(cluster: LocalCluster) -> None:
    url = _start(cluster)

    out = cluster.cli("apply", "-f", str(SEED)).stdout
    assert "service/my-web-app-service created" in out
    _ready_pods(cluster, 3)

    containers = {c.labels["pinnace.pod"] for c in cluster.containers()}
    seen: set[str] = set()

    def all_pods_answer() -> bool:
        for _ in range(12):
            page = _fetch(url)
            assert "Welcome to nginx!" in page
            seen.update(HOSTNAME.findall(page))
        return seen == containers

    wait_for("every pod to answer through the load balancer", all_pods_answer, timeout=60)
    svc = cluster.get_json("services", "my-web-app-service")
    assert svc["status"]["loadBalancer"]["ingress"] == [{"ip": "127.0.0.1"}]
    table = cluster.cli("get", "svc").stdout
    # A LoadBalancer Service has a node port too, as in Kubernetes: 80:<nodePort>/TCP.
    assert re.search(r"LoadBalancer\s+\S+\s+127\.0\.0\.1\s+80:3\d{4}/TCP", table), table
    endpoints = cluster.get_json("endpoints", "my-web-app-service")
    ready = [a["targetRef"]["name"] for s in endpoints["subsets"] for a in s.get("addresses", [])]
    assert sorted(ready) == sorted(p["metadata"]["name"] for p in cluster.pods())
    assert "127.0.0.1:" in cluster.cli("get", "endpoints").stdout
    # HAProxy itself reaches each pod at its own IP and container port, not through the
    # userland proxy of the port published on 127.0.0.1.
    wanted = {f"{_bridge_ip(c)}:80" for c in cluster.containers()}
    wait_for("HAProxy's servers at the pods' own IPs", lambda: _lb_servers(cluster) == wanted)


def _bridge_ip(container: Any) -> str:
    """The pod's IP: its namespace's, a sandbox holder's for a container that joined one."""
    networks = network_settings(container)["Networks"]
    return next(str(n["IPAddress"]) for n in networks.values() if n.get("IPAddress"))


def _lb_servers(cluster: LocalCluster) -> set[str]:
    """address:port of every server up (operational state 2) in the master's HAProxy."""
    socket_path = LbPaths(cluster.workdir / "master-data" / "lb").runtime_socket
    rows = command(socket_path, "show servers state").splitlines()
    cells = [r.split() for r in rows if r and not r.startswith("#") and len(r.split()) > 18]
    return {f"{c[4]}:{c[18]}" for c in cells if c[5] == "2"}


def test_disruptions_under_steady_traffic_fail_no_request(
    cluster: LocalCluster, tmp_path: Path
) -> None:
    url = _start(cluster)
    cluster.cli("apply", "-f", str(SEED))
    cluster.cli("scale", "deployment", "my-web-app-deployment", "--replicas", "5")
    _ready_pods(cluster, 5)
    wait_for("the LB to serve", lambda: "nginx" in _fetch(url), timeout=60)
    updated = tmp_path / "deployment.yaml"
    updated.write_text(
        (SEED / "deployment.yaml")
        .read_text()
        .replace("replicas: 3", "replicas: 5")
        .replace("image: nginx:latest", "image: pinnace/httpd:latest")
    )

    # Requests served during each disruption, counted at its end: every phase must
    # have carried traffic (a counter, not a throughput the machine may not reach).
    phases: dict[str, int] = {}
    with steady_load(url) as load:
        mark = load.served_after(0, 20)

        def phase(name: str) -> None:
            nonlocal mark
            phases[name], mark = load.ok - mark, load.ok

        # a rolling update to a new image
        cluster.cli("apply", "-f", str(updated))
        status = cluster.cli(
            "rollout", "status", "deployment/my-web-app-deployment", "--timeout", "120"
        )
        assert "successfully rolled out" in status.stdout
        _ready_pods(cluster, 5, image="pinnace/httpd:latest")
        phase("rollout")
        # a scale from 5 to 2
        cluster.cli("scale", "deployment", "my-web-app-deployment", "--replicas", "2")
        _ready_pods(cluster, 2)
        # the scaled-down pods drained: 100 more requests go through the remaining two
        load.served_after(load.ok, 100)
        phase("scale")
        # a docker kill of a pod
        victim = cluster.containers()[0]
        with load.hard_kill():
            victim.kill()
        wait_for(
            "the killed pod to restart",
            lambda: any(
                c.get("restartCount", 0) >= 1
                for p in cluster.pods()
                for c in p["status"].get("containerStatuses", [])
            ),
            timeout=30,
        )
        _ready_pods(cluster, 2)
        # the death of a node: its agent killed, its containers gone
        n1 = cluster.node("n1")
        cluster.kill(cluster.agents[n1], signal.SIGKILL)
        gone = cluster.docker.containers.list(all=True, filters={"label": f"pinnace.node={n1}"})
        # Each of its pods is one server; its holder's removal cuts the same connections.
        with load.hard_kill(sum(1 for c in gone if LABEL_SANDBOX not in c.labels)):
            for c in gone:
                remove_container(c.client, str(c.id))
        wait_for(
            "2 pods on the surviving node",
            lambda: (
                [
                    p
                    for p in _ready_pods(cluster, 2)
                    if p["spec"]["nodeName"] != n1  # type: ignore[index]
                ].__len__()
                == 2
            ),
            timeout=60,
        )
        # 100 more requests go through the survivors after the node's loss
        load.served_after(load.ok, 100)
        phase("kill and node loss")

    load.check()
    assert all(served > 0 for served in phases.values()), phases


def test_a_rollout_to_a_missing_image_stalls_and_undo_recovers(
    cluster: LocalCluster, tmp_path: Path
) -> None:
    url = _start(cluster)
    cluster.cli("apply", "-f", str(SEED))
    _ready_pods(cluster, 3)
    broken = tmp_path / "deployment.yaml"
    broken.write_text(
        (SEED / "deployment.yaml")
        .read_text()
        .replace("image: nginx:latest", "image: 127.0.0.1:9/pinnace/does-not-exist:1")
    )

    cluster.cli("apply", "-f", str(broken))
    status = cluster.cli(
        "rollout", "status", "deployment/my-web-app-deployment", "--timeout", "60", check=False
    )

    assert status.returncode == 1
    assert "rollout is stalled" in status.stderr
    assert re.search(r"ErrImagePull|ImagePullBackOff", status.stderr), status.stderr
    serving = [
        p
        for p in cluster.pods()
        if p["spec"]["containers"][0]["image"] == "nginx:latest"
        and all(c.get("ready") for c in p["status"].get("containerStatuses", []))
        and p["status"].get("phase") == "Running"
    ]
    assert len(serving) == 3
    assert "Welcome to nginx!" in _fetch(url)
    history = cluster.cli("rollout", "history", "deployment/my-web-app-deployment").stdout
    assert re.search(r"^1\s+nginx:latest", history, re.M)
    assert re.search(r"^2\s+127.0.0.1:9/pinnace/does-not-exist:1", history, re.M)

    undo = cluster.cli("rollout", "undo", "deployment/my-web-app-deployment").stdout
    assert "rolled back (now revision 3)" in undo
    status = cluster.cli("rollout", "status", "deployment/my-web-app-deployment", "--timeout", "60")
    assert "successfully rolled out" in status.stdout
    pods = _ready_pods(cluster, 3, image="nginx:latest")
    assert len(pods) == 3


def test_cluster_ip_services_answer_on_the_internal_address_only(
    cluster: LocalCluster, tmp_path: Path
) -> None:
    port = free_port()
    cluster.start_master("--lb-port-offset", str(port - 80), "--lb-internal-address", "127.0.0.2")
    cluster.start_agent("n1")
    manifest = tmp_path / "internal.yaml"
    manifest.write_text(
        (SEED / "deployment.yaml").read_text()
        + "\n---\n"
        + (SEED / "service.yaml").read_text().replace("type: LoadBalancer", "type: ClusterIP")
    )
    cluster.cli("apply", "-f", str(manifest))
    _ready_pods(cluster, 3)

    wait_for(
        "the internal address to serve",
        lambda: "Welcome to nginx!" in _fetch(f"http://127.0.0.2:{port}/"),
        timeout=60,
    )
    with pytest.raises(OSError):
        _fetch(f"http://127.0.0.1:{port}/")
    table = cluster.cli("get", "svc").stdout
    # CLUSTER-IP is its own address (--service-cidr); 127.0.0.2 is the master's way in.
    assert re.search(r"my-web-app-service\s+ClusterIP\s+10\.96\.1\.0\s+<none>\s+80/TCP", table)


def _httpd_deployment(name: str, probe_path: str) -> str:
    return f"""apiVersion: apps/v1
kind: Deployment
metadata: {{name: {name}}}
spec:
  replicas: 2
  selector: {{matchLabels: {{app: web, track: {name}}}}}
  template:
    metadata: {{labels: {{app: web, track: {name}}}}}
    spec:
      containers:
      - name: httpd
        image: pinnace/httpd:latest
        ports: [{{containerPort: 80}}]
        readinessProbe:
          httpGet: {{path: {probe_path}, port: 80}}
          periodSeconds: 1
"""


def test_a_pod_failing_its_readiness_probe_gets_no_traffic(
    cluster: LocalCluster, tmp_path: Path
) -> None:
    url = _start(cluster)
    manifest = tmp_path / "web.yaml"
    service = (SEED / "service.yaml").read_text().replace("app: my-web-app", "app: web")
    manifest.write_text(
        _httpd_deployment("good", "/healthz")
        + "---\n"
        + _httpd_deployment("bad", "/no-such-page")
        + "---\n"
        + service
    )
    cluster.cli("apply", "-f", str(manifest))

    def settled() -> dict[str, list[str]] | None:
        pods = cluster.pods()
        running = [p for p in pods if p["status"].get("phase") == "Running"]
        ready = [
            p["metadata"]["name"]
            for p in running
            if all(c.get("ready") for c in p["status"]["containerStatuses"])
        ]
        return (
            {"running": [p["metadata"]["name"] for p in running], "ready": ready}
            if len(running) == 4 and len(ready) == 2
            else None
        )

    state = wait_for("4 running pods, 2 of them ready", settled, timeout=60)
    assert all(name.startswith("good-") for name in state["ready"])

    good = {
        c.labels["pinnace.pod"]
        for c in cluster.containers()
        if c.labels["pinnace.pod"].startswith("good-")
    }
    seen: set[str] = set()
    for _ in range(60):
        seen.update(HOSTNAME.findall(_fetch(url)))
    assert seen and seen <= good, (seen, good)
    endpoints = cluster.get_json("endpoints", "my-web-app-service")
    not_ready = [
        a["targetRef"]["name"] for s in endpoints["subsets"] for a in s.get("notReadyAddresses", [])
    ]
    assert sorted(not_ready) == sorted(n for n in state["running"] if n.startswith("bad-"))
