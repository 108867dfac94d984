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

UDP and node ports: a UDP echo pod (busybox's udpsvd in the httpd image) behind a NodePort
Service answers a client in another pod's network namespace through its cluster IP (the
node proxies' nftables DNAT), and, the client keeping its source port, the pod that
replaces it answers next (the flows of the gone pod deleted from conntrack); the UDP node
port answers on a node address; a TCP NodePort Service answers on 127.0.0.1:<nodePort>
(the node proxies' HAProxy) and on the node's other addresses (not on other loopback
addresses), and a node port another process holds on the node is reported
for its Service while the others keep answering. The master's node port range is a random
window of 30000-32767, so concurrent runs never share a port; every nftables table the
agents made is gone once the cluster is closed.
"""

from __future__ import annotations

import ipaddress
import os
import random
import re
import socket
import subprocess
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import docker
import pytest

from agent.nodeproxy.process import command, parse_show_proc
from agent.runtime.port import LABEL_STANDBY
from tests.integration.cluster import (
    LocalCluster,
    pod_range,
    remove_local_route,
    remove_pod_range_rules,
    service_range,
    wait_for,
)
from tests.integration.udp_echo import serve_udp, stop, udp_ask
from tests.support import exec_output, network_settings

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
---
apiVersion: v1
kind: Service
metadata: {name: db}
spec:
  clusterIP: None
  selector: {app: db}
  ports: [{name: web, port: 80}]
---
apiVersion: apps/v1
kind: StatefulSet
metadata: {name: db}
spec:
  serviceName: db
  replicas: 1
  selector: {matchLabels: {app: db}}
  template:
    metadata: {labels: {app: db}}
    spec:
      terminationGracePeriodSeconds: 1
      containers: [{name: httpd, image: "pinnace/httpd:latest", ports: [{containerPort: 80}]}]
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


# The UDP echo pod: httpd for its readiness, and 5353/UDP, where the test runs an echo
# server in the pod's network namespace (tests/integration/udp_echo.py: none of the images
# the tests build has a UDP server); NodePort Services for it and for red.
ECHO = """apiVersion: apps/v1
kind: Deployment
metadata: {name: echo}
spec:
  replicas: 1
  selector: {matchLabels: {app: echo}}
  template:
    metadata: {labels: {app: echo}}
    spec:
      containers:
      - name: echo
        image: pinnace/httpd:latest
        ports: [{containerPort: 80}, {containerPort: 5353, protocol: UDP}]
        readinessProbe:
          httpGet: {path: /healthz, port: 80}
          periodSeconds: 1
---
apiVersion: v1
kind: Service
metadata: {name: echo}
spec:
  type: NodePort
  selector: {app: echo}
  ports: [{name: echo, port: 53, targetPort: 5353, protocol: UDP}]
---
apiVersion: v1
kind: Service
metadata: {name: red-np}
spec:
  type: NodePort
  selector: {app: red}
  ports: [{port: 80}]
"""


# Node b's agent: its pods (the client) resolve through its own DNS.
AGENT_B = ("--cluster-dns=auto",)


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
    pods = pod_range(docker_client)
    workdir = tmp_path_factory.mktemp("service-vips")
    cluster = LocalCluster(workdir, docker_client)
    first = random.randrange(30000, 32700, 50)
    try:
        cluster.start_master(
            "--no-lb",
            "--service-cidr",
            str(network),
            "--service-node-port-range",
            f"{first}-{first + 49}",
            "--cluster-cidr",
            str(pods),
            # Agent b is killed and started again below: on a loaded machine its restart
            # outlasts the lease, and its pods must not be replaced meanwhile.
            "--pod-eviction-timeout",
            "60",
        )
        cluster.start_agent("a", node_proxy=True)
        manifest = workdir / "apps.yaml"
        manifest.write_text(
            "---\n".join((APP.format(name="red"), APP.format(name="blue"), HEADLESS, ECHO))
        )
        cluster.cli("apply", "-f", str(manifest))
        wait_for(
            "red, blue, echo and db ready",
            lambda: _ready(cluster, "red", "blue", "echo", "db"),
            60,
        )
        # The client runs on the other node: its proxy, not the backends', answers it; its
        # node's DNS names the headless Services' pods on node a.
        cluster.cli("cordon", cluster.node("a"))
        cluster.start_agent("b", *AGENT_B, node_proxy=True)
        client = workdir / "client.yaml"
        client.write_text(CLIENT)
        cluster.cli("apply", "-f", str(client))
        wait_for("the client pod ready", lambda: _ready(cluster, "client"), 60)
        yield cluster, network, workdir
    finally:
        cluster.close()
        remove_local_route(network)
        remove_pod_range_rules(pods)
        # Every table the agents' node proxies made went with them (cluster.close()).
        tables = subprocess.run(["nft", "list", "tables"], capture_output=True, text=True)
        assert not [t for t in tables.stdout.split() if cluster.run_id in t], tables.stdout


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
    code, output = exec_output(container, ["/bin/sh", "-c", request])
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
            60,
        )


def test_a_headless_service_has_no_cluster_ip_but_lists_its_endpoints(
    vips: tuple[LocalCluster, ipaddress.IPv4Network, Path],
) -> None:
    cluster, _, _ = vips

    assert _cluster_ip(cluster, "red-pods") == "None"
    endpoints = cluster.get_json("endpoints", "red-pods")
    assert [a for s in endpoints["subsets"] for a in s.get("addresses", [])]


def _pod_ips(cluster: LocalCluster) -> dict[str, str]:
    """Each app's one running pod's address on its node's pod bridge, by app label."""
    nodes = {p["metadata"]["name"]: p["spec"]["nodeName"] for p in cluster.pods()}
    found = {}
    for c in cluster.containers():
        pod = c.labels.get("pinnace.pod", "")
        networks = network_settings(c)["Networks"]
        bridge = networks.get(f"pinnace-pods-{nodes.get(pod)}")
        if bridge:
            found[pod.split("-", 1)[0]] = str(bridge["IPAddress"])
    return found


def _a_records(container: Any, name: str) -> set[str]:
    """The A records busybox's nslookup prints for `name` (after the server's own lines)."""
    _, out = exec_output(container, ["nslookup", "-type=a", name])
    answer = out.decode().split("Name:", 1)[-1] if b"Name:" in out else ""
    return {line.split()[-1] for line in answer.splitlines() if line.startswith("Address")}


def test_headless_names_give_pod_addresses_reachable_from_a_pod_on_another_node(
    vips: tuple[LocalCluster, ipaddress.IPv4Network, Path],
) -> None:
    """--cluster-cidr: each node its own pod subnet and bridge (agent/hostgw), so a headless
    Service's A records and a StatefulSet pod's name give the pods' own addresses, which
    answer from a pod on another node's bridge."""
    cluster, _, _ = vips
    nodes = {
        n["metadata"]["name"]: n["spec"].get("podCIDR") for n in cluster.get_json("nodes")["items"]
    }
    subnet_a, subnet_b = nodes[cluster.node("a")], nodes[cluster.node("b")]
    assert subnet_a and subnet_b and subnet_a != subnet_b
    ips = _pod_ips(cluster)
    red_ip, db_ip = ips["red"], ips["db"]
    assert ipaddress.ip_address(red_ip) in ipaddress.ip_network(subnet_a), ips
    assert ipaddress.ip_address(db_ip) in ipaddress.ip_network(subnet_a), ips
    assert ipaddress.ip_address(ips["client"]) in ipaddress.ip_network(subnet_b), ips
    client = _client(cluster)

    wait_for(
        "red-pods to name red's pod by its own address",
        lambda: _a_records(client, "red-pods.default.svc.cluster.local") == {red_ip},
        20,
    )
    assert _a_records(client, "db-0.db.default.svc.cluster.local") == {db_ip}
    # By name, from node b's bridge to node a's, at the pods' container port.
    assert "I am red" in _get(client, "red-pods", 80)
    assert 'hostname">db-0<' in _get(client, "db-0.db", 80)


def _shown(cluster: LocalCluster, app: str) -> tuple[Any, list[str]]:
    """The app's pod (as listed) and its Service's endpoints (ip:port)."""
    (pod,) = [p for p in cluster.pods() if p["metadata"]["labels"].get("app") == app]
    endpoints = cluster.get_json("endpoints", app)
    listed = [
        f"{a['ip']}:{s['ports'][0]['port']}" for s in endpoints["subsets"] for a in s["addresses"]
    ]
    return pod, listed


def test_pods_and_endpoints_show_the_pods_own_address_once_every_node_routes_it(
    vips: tuple[LocalCluster, ipaddress.IPv4Network, Path],
) -> None:
    """Both agents route each other's pod subnet (here: on one machine, directly
    connected), so status.podIP and the Endpoints are the pod's bridge address and
    container port, as Kubernetes shows them, and that address answers from a pod on the
    other node (the Service's cluster IP still does: the tests above and below)."""
    cluster, _, _ = vips
    red_ip = _pod_ips(cluster)["red"]

    pod, _ = wait_for(
        "red's pod and endpoints at its own address",
        lambda: (
            shown
            if (shown := _shown(cluster, "red"))[0]["status"]["podIP"] == red_ip
            and shown[1] == [f"{red_ip}:80"]
            else None
        ),
        60,
    )
    assert pod["status"]["podIPs"] == [{"ip": red_ip}]
    assert pod["status"]["hostIP"] != red_ip
    (routable,) = [c for c in pod["status"]["conditions"] if c["type"] == "PodIPRoutable"]
    assert routable["status"] == "True"
    wide = cluster.cli("get", "pods", "-o", "wide").stdout
    (line,) = [row for row in wide.splitlines() if row.startswith("red-")]
    assert red_ip in line.split()
    assert "I am red" in _get(_client(cluster), red_ip, 80)


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
    """Where red's ready pods are published (node address and host port), which node
    proxies reach; `get endpoints` shows their own addresses (host-gw)."""
    return {
        published
        for p in cluster.pods()
        if p["metadata"]["labels"].get("app") == "red"
        and p["status"].get("phase") == "Running"
        and all(c.get("ready") for c in p["status"].get("containerStatuses", [{}]))
        for published in p["status"].get("endpoints", [])
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
            60,
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
        60,
    )
    wait_for(
        "the condition to clear",
        lambda: _condition(cluster, "blocked", "NodeProxyServing") is None,
        60,
    )
    cluster.cli("scale", "deployment", "red", "--replicas", "1")


def _pod_container(cluster: LocalCluster, pod: str) -> Any:
    (container,) = [c for c in cluster.containers() if c.labels.get("pinnace.pod") == pod]
    return container


def _echo_pod(cluster: LocalCluster) -> str:
    pods = [p for p in cluster.pods() if p["metadata"]["labels"].get("app") == "echo"]
    ready = [p["metadata"]["name"] for p in pods if p["status"].get("phase") == "Running"]
    return ready[0] if len(ready) == 1 and len(pods) == 1 else ""


def _other_echo_pod(cluster: LocalCluster, old: str) -> str:
    pod = _echo_pod(cluster)
    return pod if pod != old else ""


def _node_ports(cluster: LocalCluster, name: str) -> list[int]:
    return [int(p["nodePort"]) for p in cluster.get_json("services", name)["spec"]["ports"]]


def test_a_udp_service_answers_through_its_cluster_ip_and_then_from_the_pod_replacing_it(
    vips: tuple[LocalCluster, ipaddress.IPv4Network, Path],
) -> None:
    cluster, _, _ = vips
    echo = _cluster_ip(cluster, "echo")
    (node_port,) = _node_ports(cluster, "echo")
    table = cluster.cli("get", "svc").stdout
    assert re.search(rf"echo\s+NodePort\s+{re.escape(echo)}\s+<none>\s+53:{node_port}/UDP", table)
    client = _client(cluster)
    first = _echo_pod(cluster)
    source = random.randrange(20000, 29000)
    servers = [serve_udp(_pod_container(cluster, first), first)]
    try:
        answer = wait_for(
            "the echo pod to answer through the cluster IP",
            lambda: udp_ask(client, echo, 53, source),
            60,
        )
        assert answer == f"{first} ping"

        cluster.cli("delete", "pod", first)

        def replaced() -> str:
            # The client flow keeps sending meanwhile, also while the Service has no ready
            # endpoint: those packets are refused and their flow is left untranslated in
            # conntrack, which must not outlive the new endpoint's arrival.
            udp_ask(client, echo, 53, source)
            return _other_echo_pod(cluster, first)

        second = wait_for("the replacing pod", replaced, 45)
        servers.append(serve_udp(_pod_container(cluster, second), second))
        # The same client flow (same source port) kept asking: once the stale flows are
        # deleted from conntrack, its packets go to the pod that replaced it.
        wait_for(
            "the replacing pod to answer the same client flow",
            lambda: udp_ask(client, echo, 53, source) == f"{second} ping",
            30,
            interval=0.3,
        )
        # The node port answers on an address of the node other than loopback (here
        # Docker's bridge gateway), from the node itself.
        gateway = docker_gateway(client)
        wait_for(
            "the UDP node port to answer",
            lambda: _udp_ask_host(gateway, node_port) == f"{second} ping",
            60,
        )
    finally:
        for server in servers:
            stop(server)


def docker_gateway(container: Any) -> str:
    networks = network_settings(container)["Networks"]
    return str(next(n["Gateway"] for n in networks.values() if n.get("Gateway")))


def _udp_ask_host(address: str, port: int) -> str:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.settimeout(0.5)
        s.sendto(b"ping\n", (address, port))
        try:
            return s.recv(512).decode().strip()
        except OSError:
            return ""


def _http(port: int, host: str = "127.0.0.1") -> str:
    try:
        with urllib.request.urlopen(f"http://{host}:{port}/", timeout=5) as reply:
            return str(reply.read().decode())
    except OSError as e:
        return f"failed: {e}"


def test_a_nodeport_service_answers_on_the_node_and_a_held_node_port_stays_with_its_service(
    vips: tuple[LocalCluster, ipaddress.IPv4Network, Path],
) -> None:
    cluster, _, workdir = vips
    (node_port,) = _node_ports(cluster, "red-np")
    table = cluster.cli("get", "svc").stdout
    assert re.search(rf"red-np\s+NodePort\s+\S+\s+<none>\s+80:{node_port}/TCP", table)

    wait_for("red on its node port", lambda: "I am red" in _http(node_port), 60)
    # Every address of the node answers, as with kube-proxy (here Docker's bridge gateway,
    # not the agents' advertise address); loopback beyond it only with --nodeport-addresses.
    gateway = docker_gateway(_client(cluster))
    wait_for("red on another node address", lambda: "I am red" in _http(node_port, gateway), 60)
    assert _http(node_port, "127.0.0.2").startswith("failed:")
    # A node port another Service holds is refused at apply, in one sentence.
    clash = workdir / "clash.yaml"
    clash.write_text(
        "apiVersion: v1\nkind: Service\nmetadata: {name: clash}\nspec:\n  type: NodePort\n"
        f"  selector: {{app: blue}}\n  ports: [{{port: 80, nodePort: {node_port}}}]\n"
    )
    refused = cluster.cli("apply", "-f", str(clash), check=False)
    assert refused.returncode == 1 and "Traceback" not in refused.stderr
    assert refused.stderr.strip().endswith(
        f"service/clash: spec.ports[0].nodePort: {node_port} is already allocated to "
        "another Service port (choose another port or leave the field out)"
    )

    # Another process holds a free port of the range on the node: a Service asking for it
    # is told so, and red keeps answering on its own node port.
    taken = {p for s in ("echo", "red-np") for p in _node_ports(cluster, s)}
    wanted = next(p for p in range(node_port + 1, node_port + 49) if p not in taken)
    holder = socket.socket()
    try:
        holder.bind(("127.0.0.1", wanted))
        holder.listen()
        manifest = workdir / "held.yaml"
        manifest.write_text(
            "apiVersion: v1\nkind: Service\nmetadata: {name: held}\nspec:\n  type: NodePort\n"
            f"  selector: {{app: blue}}\n  ports: [{{port: 80, nodePort: {wanted}}}]\n"
        )
        cluster.cli("apply", "-f", str(manifest))
        condition = wait_for(
            "the held node port's NodeProxyServing condition",
            lambda: _condition(cluster, "held", "NodeProxyServing"),
            60,
        )
        assert condition["reason"] == "PortInUse"
        assert f"cannot listen on 127.0.0.1:{wanted}" in condition["message"]
        assert "this node port does not answer" in condition["message"]
        assert "I am red" in _http(node_port)
    finally:
        holder.close()
    wait_for("the freed node port to answer", lambda: "I am blue" in _http(wanted), 60)
    cluster.cli("delete", "svc", "held")


def _published(container: Any) -> int:
    """The ephemeral host port the namespace a container runs in publishes for port 80."""
    (binding,) = network_settings(container)["Ports"]["80/tcp"]
    return int(binding["HostPort"])


def _red_pod(cluster: LocalCluster) -> str:
    """red's one pod, once it is the only one and runs ready ("" until then)."""
    pods = [p for p in cluster.pods() if p["metadata"]["labels"].get("app") == "red"]
    return pods[0]["metadata"]["name"] if len(pods) == 1 and _ready(cluster, "red") else ""


def test_a_crash_into_its_standby_moves_reds_cluster_ip_node_port_and_headless_name(
    vips: tuple[LocalCluster, ipaddress.IPv4Network, Path],
) -> None:
    """Standby sandboxes are the agents' default: red's pod has a standby holder on node a's
    pod bridge, at another address and another ephemeral host port. Its container killed,
    the replacement joins the standby (agent/runtime/sandbox.py), so the pod's address and
    host port change under the same pod. Then, the old namespace gone: red's cluster IP
    answers from the client pod on node b (node b's proxy serves exactly the new published
    port), red's node port answers on the node, and the headless red-pods names the new
    address only (node b's DNS) and answers there. The killed container is the pod's only
    one: every answer after the crash comes from the new address."""
    cluster, _, workdir = vips
    red = _cluster_ip(cluster, "red")
    (node_port,) = _node_ports(cluster, "red-np")
    client = _client(cluster)
    proxy = cluster.agent_state_dir(cluster.node("b")) / "nodeproxy"
    pod = wait_for("red's one pod ready", lambda: _red_pod(cluster), 60)
    victim = _pod_container(cluster, pod)

    def standby() -> Any:
        found = [
            c
            for c in cluster.containers(holders=True)
            if c.labels.get(LABEL_STANDBY) and c.labels.get("pinnace.pod") == pod
        ]
        return found[0] if found else None

    holder = wait_for("red's standby", standby, 60)
    # The agent made it (and knows it: a crash from now on is replaced into it).
    log = workdir / "agent-a.log"
    wait_for(
        "the agent's standby line",
        lambda: f"standby holder {holder.id[:12]} of pod {pod}" in log.read_text(),
        30,
    )
    old_ip, new_ip = (
        _pod_ips(cluster)["red"],
        str(network_settings(holder)["Networks"][f"pinnace-pods-{cluster.node('a')}"]["IPAddress"]),
    )
    old_port, new_port = _published(victim), _published(holder)
    assert old_ip != new_ip and old_port != new_port, (old_ip, new_ip, old_port, new_port)
    wait_for(
        "node b's proxy at red's port",
        lambda: _red_servers(proxy) == _red_endpoints(cluster) == {f"127.0.0.1:{old_port}"},
        60,
    )

    victim.kill()

    def replaced() -> Any:
        found = [c for c in cluster.containers() if c.labels.get("pinnace.pod") == pod]
        return found[0] if found and found[0].id != victim.id else None

    again = wait_for("red's container replaced", replaced, 60)
    assert again.attrs["HostConfig"]["NetworkMode"] == f"container:{holder.id}"
    assert _pod_ips(cluster)["red"] == new_ip and _published(again) == new_port
    wait_for("red ready again", lambda: _red_pod(cluster) == pod, 60)
    # The cluster IP path: node b's proxy serves the new published port, and only it.
    wait_for(
        "node b's proxy at red's new port",
        lambda: _red_servers(proxy) == _red_endpoints(cluster) == {f"127.0.0.1:{new_port}"},
        60,
    )
    wait_for("red's cluster IP to answer", lambda: "I am red" in _get(client, red), 60)
    wait_for("red's node port to answer", lambda: "I am red" in _http(node_port), 60)
    # The headless name: the new address only, and it answers there (by name and by address).
    wait_for(
        "red-pods to name the new address",
        lambda: _a_records(client, "red-pods.default.svc.cluster.local") == {new_ip},
        60,
    )
    assert "I am red" in _get(client, "red-pods", 80)
    assert "I am red" in _get(client, new_ip, 80)


def _standby_of(cluster: LocalCluster, pod: str) -> Any:
    """The running standby holder of `pod` (None until there is one)."""
    found = [
        c
        for c in cluster.containers(holders=True)
        if c.labels.get(LABEL_STANDBY) and c.labels.get("pinnace.pod") == pod
    ]
    return found[0] if found else None


def _db0_ready(cluster: LocalCluster) -> bool:
    pods = [p for p in cluster.pods() if p["metadata"]["name"] == "db-0"]
    return bool(pods) and _ready(cluster, "db")


def test_a_crash_into_its_standby_moves_a_statefulset_pods_own_name(
    vips: tuple[LocalCluster, ipaddress.IPv4Network, Path],
) -> None:
    """The StatefulSet db's pod db-0 (headless Service db) has a standby holder on node a's
    pod bridge, at another address, made with the pod's hostname. Its container killed, the
    replacement joins the standby: the pod's address changes under the same pod. Then the
    pod's own name db-0.db (node b's DNS, the A record a StatefulSet's peers use), its
    status.podIP and the Service's name name the new address only, and db-0.db answers
    there with the pod's hostname (a joined container has its holder's UTS namespace)."""
    cluster, _, workdir = vips
    client = _client(cluster)
    wait_for("db-0 ready", lambda: _db0_ready(cluster), 60)
    victim = _pod_container(cluster, "db-0")
    holder = wait_for("db-0's standby", lambda: _standby_of(cluster, "db-0"), 60)
    log = workdir / "agent-a.log"
    wait_for(
        "the agent's standby line",
        lambda: f"standby holder {holder.id[:12]} of pod db-0" in log.read_text(),
        30,
    )
    old_ip = _pod_ips(cluster)["db"]
    new_ip = str(
        network_settings(holder)["Networks"][f"pinnace-pods-{cluster.node('a')}"]["IPAddress"]
    )
    assert old_ip != new_ip
    name = "db-0.db.default.svc.cluster.local"
    wait_for("db-0.db to name the old address", lambda: _a_records(client, name) == {old_ip}, 60)

    victim.kill()

    def replaced() -> Any:
        found = [c for c in cluster.containers() if c.labels.get("pinnace.pod") == "db-0"]
        return found[0] if found and found[0].id != victim.id else None

    again = wait_for("db-0's container replaced", replaced, 60)
    assert again.attrs["HostConfig"]["NetworkMode"] == f"container:{holder.id}"
    wait_for("db-0 ready again", lambda: _db0_ready(cluster), 60)
    wait_for(
        "db-0's podIP the new address",
        lambda: cluster.get_json("pods", "db-0")["status"].get("podIP") == new_ip,
        60,
    )
    wait_for("db-0.db to name the new address", lambda: _a_records(client, name) == {new_ip}, 60)
    assert _a_records(client, "db.default.svc.cluster.local") == {new_ip}
    assert 'hostname">db-0<' in _get(client, "db-0.db", 80)
    assert 'hostname">db-0<' in _get(client, new_ip, 80)


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
    # With the flags it had (another --cluster-dns would change, and so replace, its pods).
    cluster.start_agent("b", *AGENT_B, node_proxy=True)

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
