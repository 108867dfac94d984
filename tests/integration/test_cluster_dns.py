"""Issue 17 points 3 and 4 on real Docker: names and Service variables inside pods.

Two agents, each with its own dnsmasq (`--cluster-dns auto`: a link-local address per
node) and pods on one pod network. From inside a client pod: `backend`,
`backend.default` and `backend.default.svc.cluster.local` resolve to the Service's
cluster IP (and `wget http://backend/` reaches the backend through the node proxy),
the headless Service `db` to its ready pods, `db-0.db` to the StatefulSet's
first pod (whose page answers there, naming its hostname db-0); named ports have SRV
records (a headless Service's: one per pod); a headless Service with
publishNotReadyAddresses names a pod that never gets ready; the resolv.conf has
Kubernetes' searches and ndots:5; the environment has BACKEND_SERVICE_HOST and the
Docker-link variables (and a pod with dnsPolicy None and enableServiceLinks false gets
its dnsConfig and none); the names still resolve with the agent killed, after its
restart and with the master gone; and an agent asked to stop ends its dnsmasq and
removes the route to its address.
"""

from __future__ import annotations

import functools
import json
import re
import signal
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from agent.dns.address import derived_address
from agent.dns.server import is_local_address
from tests.integration.cluster import (
    LocalCluster,
    wait_for,
)
from tests.support import exec_output, remove_container

pytestmark = pytest.mark.integration

SERVICES = """apiVersion: v1
kind: Service
metadata: {name: backend}
spec:
  selector: {app: backend}
  ports: [{name: http, port: 80, targetPort: 80}]
---
apiVersion: v1
kind: Service
metadata: {name: db}
spec:
  clusterIP: None
  selector: {app: db}
  ports: [{name: web, port: 80, targetPort: 80}]
---
apiVersion: v1
kind: Service
metadata: {name: peers}
spec:
  clusterIP: None
  publishNotReadyAddresses: true
  selector: {app: starting}
  ports: [{port: 80, targetPort: 80}]
---
apiVersion: v1
kind: Namespace
metadata: {name: shop}
---
apiVersion: v1
kind: Service
metadata: {name: backend, namespace: shop}
spec:
  selector: {app: shop-backend}
  ports: [{port: 8080, targetPort: 80}]
"""
WORKLOADS = """apiVersion: apps/v1
kind: Deployment
metadata: {name: backend}
spec:
  replicas: 1
  selector: {matchLabels: {app: backend}}
  template:
    metadata: {labels: {app: backend}}
    spec:
      terminationGracePeriodSeconds: 1
      containers: [{name: web, image: "pinnace/httpd:latest", ports: [{containerPort: 80}]}]
---
apiVersion: apps/v1
kind: StatefulSet
metadata: {name: db}
spec:
  serviceName: db
  replicas: 2
  podManagementPolicy: Parallel
  selector: {matchLabels: {app: db}}
  template:
    metadata: {labels: {app: db}}
    spec:
      terminationGracePeriodSeconds: 1
      containers: [{name: web, image: "pinnace/httpd:latest", ports: [{containerPort: 80}]}]
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: client}
spec:
  replicas: 1
  selector: {matchLabels: {app: client}}
  template:
    metadata: {labels: {app: client}}
    spec:
      terminationGracePeriodSeconds: 1
      containers: [{name: sh, image: "pinnace/httpd:latest", command: [sleep, "3600"]}]
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: starting}
spec:
  replicas: 1
  selector: {matchLabels: {app: starting}}
  template:
    metadata: {labels: {app: starting}}
    spec:
      terminationGracePeriodSeconds: 1
      containers:
      - name: web
        image: "pinnace/httpd:latest"
        ports: [{containerPort: 80}]
        readinessProbe: {httpGet: {path: /never, port: 80}, periodSeconds: 1}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: shopper, namespace: shop}
spec:
  replicas: 1
  selector: {matchLabels: {app: shopper}}
  template:
    metadata: {labels: {app: shopper}}
    spec:
      terminationGracePeriodSeconds: 1
      containers: [{name: sh, image: "pinnace/httpd:latest", command: [sleep, "3600"]}]
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: custom}
spec:
  replicas: 1
  selector: {matchLabels: {app: custom}}
  template:
    metadata: {labels: {app: custom}}
    spec:
      terminationGracePeriodSeconds: 1
      enableServiceLinks: false
      dnsPolicy: None
      dnsConfig:
        nameservers: [192.0.2.53]
        searches: [corp.example]
        options: [{name: ndots, value: "2"}, {name: edns0}]
      containers: [{name: sh, image: "pinnace/httpd:latest", command: [sleep, "3600"]}]
"""


@pytest.fixture
def pod_network(docker_client: Any) -> Iterator[str]:
    network = docker_client.networks.create(
        f"pinnace-test-dns-{uuid.uuid4().hex[:6]}", labels={"pinnace.test": "cluster-dns"}
    )
    try:
        yield str(network.name)
    finally:
        network.reload()
        for container in network.containers:  # left only when the test failed midway
            remove_container(container.client, container.id)
        network.remove()


def _exec(container: Any, *cmd: str) -> str:
    code, out = exec_output(container, list(cmd))
    text = out.decode(errors="replace")
    assert code == 0, f"{' '.join(cmd)}: {text}"
    return text


def _addresses(container: Any, name: str) -> set[str]:
    """The A records busybox's nslookup prints for `name` (after the server's own lines).
    Its exit status is no guide: it asks every search domain and fails when one fails."""
    _, out = exec_output(container, ["nslookup", "-type=a", name])
    answer = out.decode().split("Name:", 1)[-1] if b"Name:" in out else ""
    return {line.split()[-1] for line in answer.splitlines() if line.startswith("Address")}


def _srv(container: Any, name: str) -> set[str]:
    """The SRV records busybox's nslookup prints for `name`: "priority weight port target"."""
    _, out = exec_output(container, ["nslookup", "-type=srv", name])
    return {
        line.split("service =", 1)[1].strip()
        for line in out.decode().splitlines()
        if "service =" in line
    }


def _looked_up(container: Any, name: str) -> str:
    """The address the C library's resolver (search domains, ndots) gives `name`: what
    `ping` says it pings. busybox's nslookup searches only for names without a dot."""
    _, out = exec_output(container, ["ping", "-c", "1", "-W", "1", name])
    found = re.search(rb"^PING \S+ \(([0-9.]+)\)", out, re.MULTILINE)
    return found.group(1).decode() if found else ""


def _fetch(container: Any, url: str) -> str:
    """The page at `url` fetched inside the container ("" when it fails); busybox 1.35's
    wget crashes with -T, so `timeout` bounds it."""
    code, out = exec_output(container, ["timeout", "5", "wget", "-q", "-O", "-", url])
    return out.decode(errors="replace") if code == 0 else ""


def _dnsmasq_pid(cluster: LocalCluster, node: str) -> int:
    try:
        return int((cluster.dns_root / node / "dnsmasq.pid").read_text().strip() or 0)
    except (OSError, ValueError):
        return 0


def _alive(pid: int) -> bool:
    """Whether the process runs (a zombie waiting for its reaper counts as gone)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(") ", 1)[1][0] != "Z"
    except (OSError, IndexError):
        return False


def _container_of(cluster: LocalCluster, pod: str) -> Any:
    return next((c for c in cluster.containers() if c.labels["pinnace.pod"] == pod), None)


def test_pods_resolve_services_and_get_their_variables(
    pod_network: str, service_cidr: str, cluster: LocalCluster, tmp_path: Path
) -> None:
    cluster.start_master("--service-cidr", service_cidr)
    for short in ("a", "b"):
        cluster.start_agent(
            short, "--pod-network", pod_network, "--cluster-dns=auto", node_proxy=True
        )
    (tmp_path / "services.yaml").write_text(SERVICES)
    (tmp_path / "workloads.yaml").write_text(WORKLOADS)
    cluster.cli("apply", "-f", str(tmp_path / "services.yaml"))
    cluster_ip = wait_for(
        "backend's cluster IP",
        lambda: cluster.get_json("services", "backend")["spec"].get("clusterIP"),
        timeout=30,
    )
    shop_ip = json.loads(cluster.cli("get", "svc", "backend", "-n", "shop", "-o", "json").stdout)[
        "spec"
    ]["clusterIP"]
    assert shop_ip and shop_ip != cluster_ip
    cluster.cli("apply", "-f", str(tmp_path / "workloads.yaml"))

    def ready() -> dict[str, dict[str, Any]] | None:
        listed = json.loads(cluster.cli("get", "pods", "-A", "-o", "json").stdout)["items"]
        pods = {p["metadata"]["name"]: p for p in listed}
        good = {n: p for n, p in pods.items() if p["status"].get("phase") == "Running"}
        ok = sum(1 for p in good.values() if p["metadata"]["labels"]["app"] == "db")
        wanted = {"db-0", "db-1"} <= set(good) and ok == 2 and len(good) == 7
        ready_db = all(
            any(
                c.get("type") == "Ready" and c["status"] == "True"
                for c in p["status"]["conditions"]
            )
            for n, p in good.items()
            if n.startswith("db-")
        )
        return good if wanted and ready_db else None

    pods = wait_for("every pod running and ready", ready, timeout=90)
    client_pod = next(n for n in pods if n.startswith("client-"))
    client = wait_for("the client's container", lambda: _container_of(cluster, client_pod))
    db_ips = {pods[n]["status"]["hostIP"] for n in ("db-0", "db-1")}

    resolv = _exec(client, "cat", "/etc/resolv.conf")
    assert "search default.svc.cluster.local svc.cluster.local cluster.local" in resolv
    assert "ndots:5" in resolv
    found = wait_for("backend to resolve", lambda: _addresses(client, "backend"), timeout=60)
    assert found == {cluster_ip}
    assert _addresses(client, "backend.default.svc.cluster.local") == {cluster_ip}
    for name in ("backend", "backend.default", "backend.default.svc"):
        assert _looked_up(client, name) == cluster_ip, name
    # By name, through the node proxy on the cluster IP, to the backend's pod.
    backend = next(n for n in pods if n.startswith("backend-"))
    for url in ("http://backend/", "http://backend.default.svc.cluster.local/"):
        page = wait_for(f"{url} to answer", functools.partial(_fetch, client, url), timeout=60)
        assert f'hostname">{backend}<' in page, url
    assert wait_for("db's pods", lambda: _addresses(client, "db") == db_ips or None, timeout=60)
    assert _looked_up(client, "db-0.db") == pods["db-0"]["status"]["hostIP"]
    assert _addresses(client, "db-1.db.default.svc.cluster.local") == {
        pods["db-1"]["status"]["hostIP"]
    }
    # db-0 answers there, and its hostname is its name, as Kubernetes gives it.
    assert 'hostname">db-0<' in _fetch(client, "http://db-0.db/")
    assert _addresses(client, "nothing-here") == set()
    # SRV records of named ports: the Service's name and port; a headless Service's pods
    # at the port they are reached on (here, on the pod network, their container port).
    assert _srv(client, "_http._tcp.backend.default.svc.cluster.local") == {
        "0 100 80 backend.default.svc.cluster.local"
    }
    assert wait_for(
        "db's SRV records",
        lambda: (
            _srv(client, "_web._tcp.db.default.svc.cluster.local")
            == {
                "0 100 80 db-0.db.default.svc.cluster.local",
                "0 100 80 db-1.db.default.svc.cluster.local",
            }
        ),
        timeout=60,
    )
    # publishNotReadyAddresses: a pod that never gets ready is named all the same.
    starting = next(n for n in pods if n.startswith("starting-"))
    assert _addresses(client, "peers") == {pods[starting]["status"]["hostIP"]}

    env = dict(line.split("=", 1) for line in _exec(client, "env").splitlines() if "=" in line)
    assert env["BACKEND_SERVICE_HOST"] == cluster_ip
    assert env["BACKEND_SERVICE_PORT"] == env["BACKEND_SERVICE_PORT_HTTP"] == "80"
    assert env["BACKEND_PORT_80_TCP"] == f"tcp://{cluster_ip}:80"
    assert "DB_SERVICE_HOST" not in env  # headless: no variables

    # A pod of namespace shop searches shop first: `backend` is shop's, `backend.default`
    # the other; its variables are shop's Services'.
    shopper_pod = next(n for n in pods if n.startswith("shopper-"))
    shopper = wait_for("the shopper's container", lambda: _container_of(cluster, shopper_pod))
    resolv = _exec(shopper, "cat", "/etc/resolv.conf")
    assert "search shop.svc.cluster.local svc.cluster.local cluster.local" in resolv
    assert _addresses(shopper, "backend") == {shop_ip}
    assert _looked_up(shopper, "backend.default") == cluster_ip
    assert f"BACKEND_SERVICE_HOST={shop_ip}" in _exec(shopper, "env").splitlines()

    # dnsPolicy None: only the pod's dnsConfig (Docker's embedded resolver on the pod
    # network forwards to its nameserver); enableServiceLinks false: no variables.
    custom_pod = next(n for n in pods if n.startswith("custom-"))
    custom = wait_for("the custom pod's container", lambda: _container_of(cluster, custom_pod))
    resolv = _exec(custom, "cat", "/etc/resolv.conf")
    assert "search corp.example" in resolv and "options ndots:2 edns0" in resolv
    assert "BACKEND_SERVICE_HOST" not in _exec(custom, "env")

    # The names are the node's data plane. A killed agent's dnsmasq keeps answering; the
    # restarted agent replaces it (by its pid file) and answers from the names file at once.
    node = pods[client_pod]["spec"]["nodeName"]
    short = node.rsplit("-", 1)[-1]
    old = _dnsmasq_pid(cluster, node)
    cluster.kill(cluster.agents[node])
    assert _addresses(client, "backend") == {cluster_ip}
    cluster.start_agent(short, "--pod-network", pod_network, "--cluster-dns=auto", node_proxy=True)
    new = wait_for("a new dnsmasq", lambda: (pid := _dnsmasq_pid(cluster, node)) != old and pid)
    assert not _alive(old)
    assert _addresses(client, "backend") == {cluster_ip}
    # ... and with the master gone.
    cluster.kill_master()
    assert _addresses(client, "backend") == {cluster_ip}
    # An agent asked to stop stops its dnsmasq and removes the route to its address.
    cluster.kill(cluster.agents[node], signal.SIGTERM)
    assert not _alive(new)
    assert not is_local_address(derived_address(node))
