"""Issue 17 point 1 on a real HAProxy and real Docker: one unservable Service never blocks the rest.

A second Service on a port another Service holds is refused at apply time; a Service whose
port some other process holds (found only by binding it) gets a Warning event and a
status condition, and meanwhile the seed Service's endpoints keep following a scale, a
rollout and a pod's death. Freed and re-applied, the refused Service is served.
"""

from __future__ import annotations

import re
import socket
import urllib.request
from pathlib import Path

import pytest

from tests.integration.cluster import LocalCluster, wait_for
from tests.support import SEED, require_haproxy

pytestmark = pytest.mark.integration

# nginx's page names its hostname: the pod's name, as Kubernetes gives it.
HOSTNAME = re.compile(r'hostname">([^<]+)<')


@pytest.fixture(autouse=True)
def _need_haproxy() -> None:
    require_haproxy()


def _fetch(url: str) -> str:
    with urllib.request.urlopen(url, timeout=5) as resp:
        assert resp.status == 200
        return str(resp.read().decode())


def _service(name: str, port: int, note: str = "") -> str:
    annotations = f"\n  annotations: {{note: {note}}}" if note else ""
    return f"""apiVersion: v1
kind: Service
metadata:
  name: {name}{annotations}
spec:
  type: LoadBalancer
  selector: {{app: my-web-app}}
  ports: [{{port: {port}, targetPort: 80}}]
"""


def _listening_socket_above(floor: int) -> socket.socket:
    """A socket some other process might hold: listening on 127.0.0.1, port > floor."""
    while True:
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        if s.getsockname()[1] > floor:
            s.listen()
            return s
        s.close()


def _serves_exactly_the_running_pods(cluster: LocalCluster, url: str, marker: str) -> bool:
    running = {c.labels["pinnace.pod"] for c in cluster.containers()}
    pods = cluster.pods()
    if len(running) != len(pods) or not all(
        c.get("ready") for p in pods for c in p["status"].get("containerStatuses", [])
    ):
        return False
    seen: set[str] = set()
    for _ in range(4 * len(running)):
        page = _fetch(url)
        if marker not in page:
            return False
        seen.update(HOSTNAME.findall(page))
    return seen == running


def test_an_unservable_service_leaves_the_others_programmed(
    cluster: LocalCluster, tmp_path: Path
) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        lb_port = int(probe.getsockname()[1])
    offset = lb_port - 80
    url = f"http://127.0.0.1:{lb_port}/"
    cluster.start_master("--lb-port-offset", str(offset))
    cluster.start_agent("n1")
    cluster.cli("apply", "-f", str(SEED))
    wait_for(
        "the seed service to serve its 3 pods",
        lambda: _serves_exactly_the_running_pods(cluster, url, "Welcome to nginx!"),
        timeout=90,
    )

    # Known at apply time: the port is another Service's. One sentence, nothing stored.
    clash = tmp_path / "other-web.yaml"
    clash.write_text(_service("other-web", 80))
    refused = cluster.cli("apply", "-f", str(clash), check=False)
    assert refused.returncode == 1
    assert "service/other-web" in refused.stderr
    assert "service/my-web-app-service" in refused.stderr
    assert "Traceback" not in refused.stderr
    assert len(refused.stderr.strip().splitlines()) == 1, refused.stderr
    assert cluster.cli("get", "svc", "other-web", check=False).returncode == 1

    # Known only to HAProxy: another process holds the port.
    blocker = _listening_socket_above(offset)
    held_port = blocker.getsockname()[1] - offset
    held = tmp_path / "held.yaml"
    held.write_text(_service("held", held_port))
    try:
        cluster.cli("apply", "-f", str(held))

        def condition() -> dict[str, str] | None:
            status = cluster.get_json("services", "held")["status"]
            for c in status.get("conditions", []):
                if c["type"] == "LoadBalancerServing" and c["status"] == "False":
                    assert status["loadBalancer"]["ingress"] == []
                    return dict(c)
            return None

        cond = wait_for("the held service's condition", condition, timeout=30)
        assert cond["reason"] == "LoadBalancerFailed"
        assert str(held_port + offset) in cond["message"], cond["message"]
        events = cluster.cli("get", "events").stdout
        assert re.search(r"Warning\s+LoadBalancerFailed\s+service/held", events), events
        assert re.search(r"held\s+LoadBalancer\s+\S+\s+<pending>", cluster.cli("get", "svc").stdout)

        # Every other Service keeps following its pods: scale, rollout, pod death.
        cluster.cli("scale", "deployment", "my-web-app-deployment", "--replicas", "5")
        wait_for(
            "the scaled-up pods to serve",
            lambda: _serves_exactly_the_running_pods(cluster, url, "Welcome to nginx!"),
            timeout=90,
        )
        updated = tmp_path / "deployment.yaml"
        updated.write_text(
            (SEED / "deployment.yaml")
            .read_text()
            .replace("replicas: 3", "replicas: 2")
            .replace("image: nginx:latest", "image: pinnace/httpd:latest")
        )
        cluster.cli("apply", "-f", str(updated))
        wait_for(
            "the rolled-out pods to serve",
            lambda: _serves_exactly_the_running_pods(cluster, url, "pinnace httpd"),
            timeout=120,
        )
        victim = cluster.containers()[0]
        victim.kill()
        wait_for(
            "the dead pod to be restarted and serve again",
            lambda: (
                any(
                    c.get("restartCount", 0) >= 1
                    for p in cluster.pods()
                    for c in p["status"].get("containerStatuses", [])
                )
                and _serves_exactly_the_running_pods(cluster, url, "pinnace httpd")
            ),
            timeout=60,
        )
    finally:
        blocker.close()

    # The port is free again; a changed Service is tried again at once.
    held.write_text(_service("held", held_port, note="retry"))
    cluster.cli("apply", "-f", str(held))
    held_url = f"http://127.0.0.1:{held_port + offset}/"
    wait_for("the held service to serve", lambda: _answers(held_url, "pinnace httpd"), timeout=30)
    wait_for(
        "the condition to clear",
        lambda: not cluster.get_json("services", "held")["status"].get("conditions"),
        timeout=60,
    )


def _httpd(name: str) -> str:
    return f"""apiVersion: apps/v1
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
        ports: [{{containerPort: 80}}]
---
apiVersion: v1
kind: Service
metadata: {{name: {name}}}
spec:
  type: LoadBalancer
  selector: {{app: {name}}}
  ports: [{{port: 80, targetPort: 80}}]
"""


def _answers(url: str, marker: str) -> bool:
    try:
        return marker in _fetch(url)
    except OSError:
        return False


def test_an_address_pool_gives_each_loadbalancer_service_its_own_address_on_port_80(
    cluster: LocalCluster, tmp_path: Path
) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = int(probe.getsockname()[1])
    cluster.start_master(
        "--lb-port-offset", str(port - 80), "--lb-address-pool", "127.0.0.2-127.0.0.3"
    )
    cluster.start_agent("n1")
    cluster.cli("apply", "-f", str(SEED))
    other = tmp_path / "other-web.yaml"
    other.write_text(_httpd("other-web"))
    cluster.cli("apply", "-f", str(other))

    # Both on port 80, each on its own address, each answering with its own pods.
    def ingress(name: str) -> str:
        found = cluster.get_json("services", name)["status"]["loadBalancer"]["ingress"]
        return str(found[0]["ip"]) if found else ""

    wait_for(
        "two addresses",
        lambda: {ingress("my-web-app-service"), ingress("other-web")} == {"127.0.0.2", "127.0.0.3"},
        timeout=30,
    )
    web, other_web = ingress("my-web-app-service"), ingress("other-web")
    wait_for("the seed app", lambda: _answers(f"http://{web}:{port}/", "Welcome to nginx!"), 90)
    wait_for("the other app", lambda: _answers(f"http://{other_web}:{port}/", "pinnace httpd"), 90)
    table = cluster.cli("get", "svc").stdout
    # A LoadBalancer Service has a node port too, as in Kubernetes: 80:<nodePort>/TCP.
    assert re.search(
        rf"other-web\s+LoadBalancer\s+\S+\s+{re.escape(other_web)}\s+80:3\d{{4}}/TCP", table
    )

    # No address left: the third one waits, saying why; apply does not refuse it.
    third = tmp_path / "third.yaml"
    third.write_text(_httpd("third"))
    cluster.cli("apply", "-f", str(third))

    def pending() -> dict[str, str] | None:
        status = cluster.get_json("services", "third")["status"]
        conditions = [c for c in status.get("conditions", []) if c["status"] == "False"]
        return dict(conditions[0]) if conditions else None

    cond = wait_for("the third service pending", pending, timeout=30)
    assert cond["reason"] == "AddressPoolExhausted"
    assert re.search(
        r"Warning\s+AddressPoolExhausted\s+service/third", cluster.cli("get", "events").stdout
    )

    # A loadBalancerIP outside the pool is refused at apply, naming the pool.
    outside = tmp_path / "outside.yaml"
    outside.write_text(
        _httpd("outside").replace(
            "type: LoadBalancer", "type: LoadBalancer\n  loadBalancerIP: 127.0.0.9"
        )
    )
    refused = cluster.cli("apply", "-f", str(outside), check=False)
    assert refused.returncode == 1
    assert (
        "spec.loadBalancerIP 127.0.0.9 is not in the load balancer's address pool" in refused.stderr
    )

    # An address freed goes to the waiting Service.
    cluster.cli("delete", "service", "other-web")
    wait_for("the third service served", lambda: ingress("third") == other_web, timeout=30)
    wait_for("the third app", lambda: _answers(f"http://{other_web}:{port}/", "pinnace httpd"), 60)
    assert _answers(f"http://{web}:{port}/", "Welcome to nginx!")
