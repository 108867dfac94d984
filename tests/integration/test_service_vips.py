"""Service cluster IPs on real Docker and HAProxy: an address per Service, served on every node.

One cluster for the module: a master (no load balancer: east-west traffic does not need
it) with a service range of its own (a random /24, so concurrent runs on one machine never
share an address), and two agents running node proxies. Two ClusterIP Services on port 80
each answer with their own pods, reached from inside a pod container on the other node
(`nc` to the cluster IP: busybox's static wget crashes in these images); a headless Service
gets no address; a requested address is honoured, a taken one refused in one sentence; a
port held by another process on the node is reported for its Service (Warning event and
condition) while the other Services follow a scale through the Runtime API, without a
reload, and is served once freed; the node proxy keeps serving through its agent's death
and is adopted by the restarted agent; and with the master killed it keeps serving (the
data plane outlives the master).
"""

from __future__ import annotations

import ipaddress
import os
import re
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import docker
import pytest

from agent.nodeproxy.process import command, parse_show_proc
from tests.integration.cluster import (
    LocalCluster,
    remove_local_route,
    service_range,
    wait_for,
)

APP = """apiVersion: apps/v1
kind: Deployment
metadata: {{name: {name}}}
spec:
  replicas: 1
  selector: {{matchLabels: {{app: {name}}}}}
  template:
    metadata: {{labels: {{app: {name}}}}}
    spec:
      containers:
      - name: httpd
        image: pinnace/httpd:latest
        env: [{{name: MESSAGE, value: "I am {name}"}}]
        ports: [{{containerPort: 80}}]
        readinessProbe:
          httpGet: {{path: /healthz, port: 80}}
          periodSeconds: 1
---
apiVersion: v1
kind: Service
metadata: {{name: {name}}}
spec:
  selector: {{app: {name}}}
  ports: [{{port: 80}}]
"""

HEADLESS = """apiVersion: v1
kind: Service
metadata: {name: red-pods}
spec:
  clusterIP: None
  selector: {app: red}
  ports: [{port: 80}]
"""

CLIENT = """apiVersion: apps/v1
kind: Deployment
metadata: {name: client}
spec:
  replicas: 1
  selector: {matchLabels: {app: client}}
  template:
    metadata: {labels: {app: client}}
    spec:
      containers:
      - name: httpd
        image: pinnace/httpd:latest
"""


def _pinned(name: str, address: str) -> str:
    return (
        f"apiVersion: v1\nkind: Service\nmetadata: {{name: {name}}}\n"
        f"spec:\n  clusterIP: {address}\n  selector: {{app: red}}\n  ports: [{{port: 80}}]\n"
    )


@pytest.fixture(scope="module")
def vips(
    tmp_path_factory: pytest.TempPathFactory, docker_client: docker.DockerClient
) -> Iterator[tuple[LocalCluster, ipaddress.IPv4Network, Path]]:
    network = service_range()
    workdir = tmp_path_factory.mktemp("service-vips")
    cluster = LocalCluster(workdir, docker_client)
    try:
        cluster.start_master("--no-lb", "--service-cidr", str(network))
        cluster.start_agent("a", node_proxy=True)
        manifest = workdir / "apps.yaml"
        manifest.write_text(
            "---\n".join((APP.format(name="red"), APP.format(name="blue"), HEADLESS))
        )
        cluster.cli("apply", "-f", str(manifest))
        wait_for("red and blue ready", lambda: _ready(cluster, "red", "blue"), 60)
        # The client runs on the other node: its proxy, not the backends', answers it.
        cluster.cli("cordon", cluster.node("a"))
        cluster.start_agent("b", node_proxy=True)
        client = workdir / "client.yaml"
        client.write_text(CLIENT)
        cluster.cli("apply", "-f", str(client))
        wait_for("the client pod ready", lambda: _ready(cluster, "client"), 60)
        yield cluster, network, workdir
    finally:
        cluster.close()
        remove_local_route(network)


def _ready(cluster: LocalCluster, *apps: str) -> bool:
    pods = cluster.pods()
    return all(
        any(
            p["metadata"]["labels"].get("app") == app
            and p["status"].get("phase") == "Running"
            and all(c.get("ready") for c in p["status"].get("containerStatuses", [{}]))
            for p in pods
        )
        for app in apps
    )


def _client(cluster: LocalCluster) -> Any:
    (pod,) = [p for p in cluster.pods() if p["metadata"]["labels"].get("app") == "client"]
    assert pod["spec"]["nodeName"] == cluster.node("b")
    (container,) = [
        c for c in cluster.containers() if c.labels.get("pinnace.pod") == pod["metadata"]["name"]
    ]
    return container


def _get(container: Any, address: str, port: int = 80) -> str:
    """GET / from inside the pod's container, to address:port (busybox sh and nc)."""
    request = f'printf "GET / HTTP/1.0\\r\\n\\r\\n" | timeout 5 nc {address} {port}'
    code, output = container.exec_run(["/bin/sh", "-c", request])
    return output.decode(errors="replace") if code == 0 else f"exit {code}: {output!r}"


def _cluster_ip(cluster: LocalCluster, name: str) -> str:
    spec = cluster.get_json("services", name)["spec"]
    assert spec["clusterIPs"] == [spec["clusterIP"]]
    return str(spec["clusterIP"])


def test_two_services_on_port_80_each_answer_from_a_pod_on_another_node(
    vips: tuple[LocalCluster, ipaddress.IPv4Network, Path],
) -> None:
    cluster, network, _ = vips
    red, blue = _cluster_ip(cluster, "red"), _cluster_ip(cluster, "blue")
    assert red != blue
    assert ipaddress.ip_address(red) in network and ipaddress.ip_address(blue) in network
    table = cluster.cli("get", "svc").stdout
    assert re.search(rf"red\s+ClusterIP\s+{re.escape(red)}\s+<none>\s+80/TCP", table)
    assert re.search(r"red-pods\s+ClusterIP\s+None\s+<none>\s+80/TCP", table)
    client = _client(cluster)

    for name, address in (("red", red), ("blue", blue)):
        wait_for(
            f"{name}'s cluster IP to answer from its own pod",
            lambda a=address, n=name: f"I am {n}" in _get(client, a),  # type: ignore[misc]
            20,
        )


def test_a_headless_service_has_no_cluster_ip_but_lists_its_endpoints(
    vips: tuple[LocalCluster, ipaddress.IPv4Network, Path],
) -> None:
    cluster, _, _ = vips

    assert _cluster_ip(cluster, "red-pods") == "None"
    endpoints = cluster.get_json("endpoints", "red-pods")
    assert [a for s in endpoints["subsets"] for a in s.get("addresses", [])]


def test_a_requested_address_is_honoured_and_a_taken_one_refused(
    vips: tuple[LocalCluster, ipaddress.IPv4Network, Path],
) -> None:
    cluster, network, workdir = vips
    wanted = str(network.network_address + 10)
    first, second = workdir / "pinned.yaml", workdir / "again.yaml"
    first.write_text(_pinned("pinned", wanted))
    second.write_text(_pinned("again", wanted))

    cluster.cli("apply", "-f", str(first))
    refused = cluster.cli("apply", "-f", str(second), check=False)

    assert _cluster_ip(cluster, "pinned") == wanted
    assert refused.returncode == 1
    assert refused.stderr.strip().endswith(
        f"service/again: spec.clusterIP: {wanted} is already allocated to another Service "
        "(choose another address or leave it out)"
    )
    assert "Traceback" not in refused.stderr
    wait_for("the pinned address to answer", lambda: "I am red" in _get(_client(cluster), wanted))


def _blocked(address: str, port: int) -> str:
    return (
        f"apiVersion: v1\nkind: Service\nmetadata: {{name: blocked}}\nspec:\n"
        f"  clusterIP: {address}\n  selector: {{app: red}}\n"
        f"  ports: [{{port: {port}, targetPort: 80}}]\n"
    )


def _condition(cluster: LocalCluster, name: str, kind: str) -> dict[str, str] | None:
    status = cluster.get_json("services", name)["status"]
    return next((c for c in status.get("conditions", []) if c["type"] == kind), None)


def _red_servers(proxy: Path) -> set[str]:
    """The addresses running (operational state 2) in the red section of one node proxy."""
    rows = command(proxy / "admin.sock", "show servers state default.red:80").splitlines()
    return {f"{r.split()[4]}:{r.split()[18]}" for r in rows[2:] if r and r.split()[5] == "2"}


def _red_endpoints(cluster: LocalCluster) -> set[str]:
    subsets = cluster.get_json("endpoints", "red").get("subsets", [])
    return {
        f"{a['ip']}:{port['port']}"
        for s in subsets
        for a in s.get("addresses", [])
        for port in s.get("ports", [])
    }


def test_a_port_taken_on_the_node_stays_with_its_service_and_endpoints_change_without_reload(
    vips: tuple[LocalCluster, ipaddress.IPv4Network, Path],
) -> None:
    cluster, network, workdir = vips
    address = str(network.network_address + 20)
    proxy = cluster.agent_state_dir(cluster.node("b")) / "nodeproxy"
    reloads = parse_show_proc(command(proxy / "master.sock", "show proc")).reloads
    # Another process on the node listens on the Service's address and port (no
    # SO_REUSEPORT): the node proxy cannot bind it.
    holder = socket.socket()
    try:
        holder.bind((address, 0))
        holder.listen()
        port = holder.getsockname()[1]
        manifest = workdir / "blocked.yaml"
        manifest.write_text(_blocked(address, port))
        cluster.cli("apply", "-f", str(manifest))
        # Meanwhile the other Services keep being programmed: red scales, through the
        # Runtime API (no reload).
        cluster.cli("scale", "deployment", "red", "--replicas", "2")

        condition = wait_for(
            "the blocked Service's NodeProxyServing condition",
            lambda: _condition(cluster, "blocked", "NodeProxyServing"),
            20,
        )
        assert condition["status"] == "False" and condition["reason"] == "PortInUse"
        assert f"cannot listen on {address}:{port}" in condition["message"]
        assert f"held by pid {os.getpid()}" in condition["message"]
        events = cluster.cli("get", "events").stdout
        assert re.search(r"Warning\s+PortInUse\s+service/blocked", events), events
        wait_for(
            "the node proxy to serve both red endpoints",
            lambda: (
                len(_red_servers(proxy)) == 2 and _red_servers(proxy) == _red_endpoints(cluster)
            ),
            60,
        )
        after = parse_show_proc(command(proxy / "master.sock", "show proc"))
        assert after.reloads == reloads and after.failed == 0
    finally:
        holder.close()
    # Freed, the port is bound on the next retry, with no new table, and the problem clears.
    wait_for(
        "the blocked Service to answer on its freed port",
        lambda: "I am red" in _get(_client(cluster), address, port),
        20,
    )
    wait_for(
        "the condition to clear",
        lambda: _condition(cluster, "blocked", "NodeProxyServing") is None,
        20,
    )
    cluster.cli("scale", "deployment", "red", "--replicas", "1")


def test_the_node_proxy_outlives_its_agent_and_a_restarted_agent_adopts_it(
    vips: tuple[LocalCluster, ipaddress.IPv4Network, Path],
) -> None:
    cluster, _, workdir = vips
    red = _cluster_ip(cluster, "red")
    client = _client(cluster)
    node = cluster.node("b")
    pidfile = cluster.agent_state_dir(node) / "nodeproxy" / "haproxy.pid"
    before = pidfile.read_text().split()[0]

    cluster.kill(cluster.agents[node])
    assert "I am red" in _get(client, red)
    cluster.start_agent("b", node_proxy=True)

    log = workdir / "agent-b.log"
    wait_for(
        "the restarted agent to adopt",
        lambda: f"adopted HAProxy (pid {before})" in log.read_text(),
        30,
    )
    assert pidfile.read_text().split()[0] == before
    assert "I am red" in _get(client, red)


def test_the_node_proxy_keeps_serving_while_the_master_is_down(
    vips: tuple[LocalCluster, ipaddress.IPv4Network, Path],
) -> None:
    cluster, _, _ = vips
    red = _cluster_ip(cluster, "red")
    client = _client(cluster)

    cluster.kill_master()

    assert "I am red" in _get(client, red)
    state = cluster.agent_state_dir(cluster.node("b")) / "nodeproxy"
    assert (state / "haproxy.pid").is_file()
    assert f"bind {red}:80" in (state / "haproxy.cfg").read_text()
