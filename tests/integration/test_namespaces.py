"""Issue 11 point 1 on real Docker and HAProxy: the same Deployment, Service, ConfigMap and
Secret names in two namespaces, each Service reaching only its own pods and each pod's
environment (env valueFrom, envFrom, $(VAR)) built from its own namespace's objects;
`get -A`; a missing namespace refused; kubectl -n/-A and create/delete namespace;
deleting a namespace (Terminating, then gone) stops its containers and its load balancer
entries while the other namespace keeps serving.

One cluster (a master with HAProxy, one agent) serves the whole module.
"""

from __future__ import annotations

import json
import re
import socket
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import docker
import pytest

from tests.integration.cluster import LocalCluster, wait_for
from tests.integration.kube_helpers import Kubectl, kubectls, write_kubeconfig
from tests.support import exec_output, free_port, require_haproxy

pytestmark = pytest.mark.integration

# nginx's page names its hostname: the pod's name, as Kubernetes gives it.
HOSTNAME = re.compile(r'hostname">([^<]+)<')
TEAMS = {"team-a": 80, "team-b": 81}


_SLOW_POD = """apiVersion: apps/v1
kind: Deployment
metadata: {name: slow}
spec:
  replicas: 1
  selector: {matchLabels: {app: slow}}
  template:
    metadata: {labels: {app: slow}}
    spec:
      terminationGracePeriodSeconds: 10
      containers:
      - name: s
        image: pinnace/httpd:latest
        command: ["/bin/sh", "-c", "trap 'sleep 1; exit 0' TERM; while true; do sleep 0.2; done"]
"""


def _app(namespace: str, port: int) -> str:
    return f"""apiVersion: v1
kind: Namespace
metadata:
  name: {namespace}
---
apiVersion: v1
kind: ConfigMap
metadata:
  name: settings
  namespace: {namespace}
data: {{color: {namespace}-color, size: "{port}"}}
---
apiVersion: v1
kind: Secret
metadata:
  name: creds
  namespace: {namespace}
stringData: {{password: {namespace}-password}}
---
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
  namespace: {namespace}
spec:
  replicas: 2
  selector:
    matchLabels: {{app: web}}
  template:
    metadata:
      labels: {{app: web}}
    spec:
      containers:
      - name: web
        image: nginx:latest
        ports: [{{containerPort: 80}}]
        envFrom: [{{prefix: CFG_, configMapRef: {{name: settings}}}}]
        env:
        - {{name: COLOR, valueFrom: {{configMapKeyRef: {{name: settings, key: color}}}}}}
        - {{name: PASSWORD, valueFrom: {{secretKeyRef: {{name: creds, key: password}}}}}}
        - {{name: WHERE, valueFrom: {{fieldRef: {{fieldPath: metadata.namespace}}}}}}
        - {{name: GREETING, value: "$(COLOR) in $(WHERE)"}}
---
apiVersion: v1
kind: Service
metadata:
  name: web
  namespace: {namespace}
spec:
  type: LoadBalancer
  selector: {{app: web}}
  ports: [{{port: {port}, targetPort: 80}}]
"""


class _Setup:
    def __init__(self, cluster: LocalCluster, offset: int) -> None:
        self.cluster = cluster
        self.offset = offset

    def url(self, namespace: str) -> str:
        return f"http://127.0.0.1:{TEAMS[namespace] + self.offset}/"

    def containers(self, namespace: str) -> set[str]:
        return {
            c.labels["pinnace.pod"]
            for c in self.cluster.containers()
            if c.labels.get("pinnace.namespace") == namespace
        }

    def served(self, namespace: str, tries: int = 12) -> set[str] | None:
        seen: set[str] = set()
        for _ in range(tries):
            try:
                with urllib.request.urlopen(self.url(namespace), timeout=3) as resp:
                    seen.update(HOSTNAME.findall(resp.read().decode()))
            except (OSError, urllib.error.URLError):
                return None
        return seen


@pytest.fixture(scope="module")
def setup(
    tmp_path_factory: pytest.TempPathFactory, docker_client: docker.DockerClient
) -> Iterator[_Setup]:
    require_haproxy()
    workdir = tmp_path_factory.mktemp("namespaces")
    cluster = LocalCluster(workdir, docker_client)
    try:
        # Ports 80 and 81 of the Services land on two free ports above the offset.
        offset = free_port() - 80
        while True:
            try:
                with socket.socket() as s:
                    s.bind(("127.0.0.1", 81 + offset))
                break
            except OSError:
                offset = free_port() - 80
        cluster.start_master("--lb-port-offset", str(offset))
        cluster.start_agent("n1")
        for namespace, port in TEAMS.items():
            path = workdir / f"{namespace}.yaml"
            path.write_text(_app(namespace, port))
            cluster.cli("apply", "-f", str(path))
        yield _Setup(cluster, offset)
    finally:
        cluster.close()


def test_an_object_for_a_missing_namespace_is_refused_naming_file_and_field(
    setup: _Setup, tmp_path: Path
) -> None:
    path = tmp_path / "stray.yaml"
    path.write_text(_app("team-a", 80).split("---\n", 1)[1].replace("team-a", "nowhere"))

    refused = setup.cluster.cli("apply", "-f", str(path), check=False)

    assert refused.returncode == 1
    line = refused.stderr.strip()
    assert len(line.splitlines()) == 1 and "Traceback" not in line, line
    assert f"{path}: document 1: metadata.namespace: " in line, line
    assert 'namespaces "nowhere" not found' in line, line
    for kind in ("configmaps", "secrets", "deployments", "services"):
        assert "nowhere" not in setup.cluster.cli("get", kind, "-A").stdout


def test_same_names_in_two_namespaces_each_service_reaches_only_its_own_pods(
    setup: _Setup,
) -> None:
    for namespace in TEAMS:

        def own_pods_only(ns: str = namespace) -> bool:
            mine = setup.containers(ns)
            return len(mine) == 2 and setup.served(ns) == mine

        wait_for(f"service web of {namespace} to serve its own 2 pods", own_pods_only, timeout=60)
    assert not setup.containers("team-a") & setup.containers("team-b")
    for container in setup.cluster.containers():
        ns = container.labels["pinnace.namespace"]
        code, out = exec_output(container, ["env"])
        assert code == 0, out
        env = dict(line.split("=", 1) for line in out.decode().splitlines() if "=" in line)
        assert env["COLOR"] == f"{ns}-color" and env["PASSWORD"] == f"{ns}-password"
        assert env["CFG_size"] == str(TEAMS[ns]) and env["CFG_color"] == f"{ns}-color"
        assert env["GREETING"] == f"{ns}-color in {ns}", env

    every = setup.cluster.cli("get", "pods", "-A").stdout.splitlines()
    assert every[0].split()[:2] == ["NAMESPACE", "NAME"], every
    assert sorted(line.split()[0] for line in every[1:]) == ["team-a"] * 2 + ["team-b"] * 2
    only_a = setup.cluster.cli("get", "pods", "-n", "team-a", "-o", "json").stdout
    assert only_a.count('"namespace": "team-a"') >= 2 and "team-b" not in only_a
    services = setup.cluster.cli("get", "svc", "-A").stdout
    assert re.search(r"team-a\s+web\s+LoadBalancer", services), services
    assert re.search(r"team-b\s+web\s+LoadBalancer", services), services
    assert "No resources found in default namespace." in (setup.cluster.cli("get", "pods").stderr)


def test_kubectl_sees_and_uses_namespaces(setup: _Setup, tmp_path: Path) -> None:
    k = Kubectl(kubectls()[-1], write_kubeconfig(setup.cluster), tmp_path)

    every = k.run("get", "pods", "-A").stdout.splitlines()
    assert every[0].split()[:2] == ["NAMESPACE", "NAME"], every
    assert sorted(line.split()[0] for line in every[1:]) == ["team-a"] * 2 + ["team-b"] * 2
    only_b = k.run("-n", "team-b", "get", "deployments").stdout
    assert re.search(r"^web\s+2/2", only_b, re.M), only_b
    assert "No resources found in default namespace." in k.run("get", "deployments").stderr

    assert "namespace/team-c created" in k.run("create", "namespace", "team-c").stdout
    config = tmp_path / "cfg.yaml"
    config.write_text("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: web}\ndata: {a: b}\n")
    assert "configmap/web created" in k.run("-n", "team-c", "apply", "-f", str(config)).stdout
    stored = json.loads(setup.cluster.cli("get", "cm", "web", "-n", "team-c", "-o", "json").stdout)
    assert stored["metadata"]["namespace"] == "team-c"
    assert setup.cluster.cli("get", "cm", "web", check=False).returncode == 1  # not in default
    assert "team-c" in k.run("get", "namespaces").stdout
    missing = k.run("-n", "nowhere", "apply", "-f", str(config), check=False)
    assert missing.returncode == 1 and 'namespaces "nowhere" not found' in missing.stderr

    # kubectl delete namespace waits (it watches the namespace) until it is gone, pods and
    # all; a pod that takes a second to stop on SIGTERM makes the wait real.
    slow = tmp_path / "slow.yaml"
    slow.write_text(_SLOW_POD)
    wheel = Kubectl(kubectls()[0], write_kubeconfig(setup.cluster), tmp_path)
    for client in (k, wheel):
        if client is wheel:
            client.run("create", "namespace", "team-c")
        client.run("-n", "team-c", "apply", "-f", str(slow))
        wait_for("team-c's pod running", lambda: setup.containers("team-c"))
        assert 'namespace "team-c" deleted' in client.run("delete", "namespace", "team-c").stdout
        gone = client.run("get", "namespace", "team-c", check=False)
        assert gone.returncode == 1 and 'namespaces "team-c" not found' in gone.stderr
        assert setup.containers("team-c") == set()
    assert k.run("get", "namespace", "default").returncode == 0


def test_deleting_a_namespace_stops_its_pods_and_its_service_and_spares_the_other(
    setup: _Setup,
) -> None:
    wait_for("team-b to serve", lambda: setup.served("team-b") == setup.containers("team-b"))
    assert setup.containers("team-a")

    deleted = setup.cluster.cli("delete", "namespace", "team-a")

    assert 'namespace "team-a" deleted' in deleted.stdout
    listed = setup.cluster.cli("get", "ns").stdout
    if "team-a" in listed:  # usually caught while its pods stop
        assert re.search(r"team-a\s+Terminating", listed), listed
    wait_for("team-a's containers to be gone", lambda: not setup.containers("team-a"), timeout=30)
    wait_for(
        "namespace team-a to be gone",
        lambda: setup.cluster.cli("get", "ns", "team-a", check=False).returncode == 1,
        timeout=60,
    )
    wait_for("team-a's service port to close", lambda: setup.served("team-a", 1) is None)
    for kind in ("svc", "cm", "secrets", "deploy", "sa", "pods"):
        assert "team-a" not in setup.cluster.cli("get", kind, "-A").stdout, kind
    events = setup.cluster.cli("get", "events").stdout
    assert re.search(r"Terminating\s+namespace/team-a", events), events
    assert re.search(r"Deleted\s+namespace/team-a", events), events
    assert setup.served("team-b") == setup.containers("team-b")
    again = setup.cluster.cli("get", "ns").stdout
    assert re.search(r"default\s+Active", again) and re.search(r"team-b\s+Active", again), again
