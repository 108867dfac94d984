"""A pod behind a Service keeps its traffic after its crash moves it into its standby sandbox.

Standby sandboxes are the agent's default (agent/runtime/sandbox.py): a one-container pod
runs with a network of its own, gets a standby holder once the engine is quiet, and its
crashed container is replaced by one joined to that holder. The pod's address and its
ephemeral host port are then the holder's, not the ones it had: the agent reports them like
any replacement's, and the master must move the Service's endpoint and its HAProxy server.
Here, on a real master with its HAProxy and one real agent (LocalCluster, port 0), two
replicas behind a LoadBalancer Service under steady traffic: one pod's container is killed
once its standby was listed; the replacement runs in the standby's namespace, at the
standby's address and host port; the Service's endpoints (node address:host port) and
HAProxy's servers (the pods' own addresses) are exactly the pods' now; both pods answer
through the load balancer; and no request failed (HAProxy's retries carry the crash, as for
any pod's).

Fails on the code before standbys were the agent's default (no standby is ever made: the
wait for it times out). Traffic goes only to 127.0.0.1 and the test's own containers.
"""

from __future__ import annotations

import urllib.request
from typing import Any

import pytest

from agent.runtime.port import LABEL_STANDBY
from tests.integration.cluster import LocalCluster, wait_for
from tests.integration.test_load_balancer import _lb_servers
from tests.integration.traffic import HOSTNAME, steady_load
from tests.support import free_port, network_settings, require_haproxy

pytestmark = pytest.mark.integration

MANIFEST = """\
apiVersion: apps/v1
kind: Deployment
metadata: {name: sb}
spec:
  replicas: 2
  selector: {matchLabels: {app: sb}}
  template:
    metadata: {labels: {app: sb}}
    spec:
      terminationGracePeriodSeconds: 1
      containers:
      - name: web
        image: pinnace/httpd:latest
        ports: [{containerPort: 80}]
        readinessProbe:
          httpGet: {path: /healthz, port: 80}
          periodSeconds: 1
---
apiVersion: v1
kind: Service
metadata: {name: sb}
spec:
  type: LoadBalancer
  selector: {app: sb}
  ports: [{port: 80}]
"""


@pytest.fixture(autouse=True)
def _need_haproxy() -> None:
    require_haproxy()


def _ready(cluster: LocalCluster) -> set[str] | None:
    """The pods' names once both run ready, else None."""
    pods = [p for p in cluster.pods() if not p["metadata"].get("deletionTimestamp")]
    ready = {
        p["metadata"]["name"]
        for p in pods
        if p["status"].get("phase") == "Running"
        and all(c.get("ready") for c in p["status"].get("containerStatuses", [{}]))
    }
    return ready if len(ready) == len(pods) == 2 else None


def _own_ip(container: Any) -> str:
    """The address of the namespace a container runs in (its holder's, once joined)."""
    networks = network_settings(container)["Networks"]
    return next(str(n["IPAddress"]) for n in networks.values() if n.get("IPAddress"))


def _host_port(container: Any) -> int:
    """The ephemeral host port the namespace a container runs in publishes for port 80."""
    (binding,) = network_settings(container)["Ports"]["80/tcp"]
    return int(binding["HostPort"])


def _endpoints(cluster: LocalCluster) -> set[str]:
    """The Service's ready endpoints as address:port (the node's address, the host port)."""
    found = cluster.get_json("endpoints", "sb")
    return {
        f"{a['ip']}:{p['port']}"
        for s in found.get("subsets", [])
        for a in s.get("addresses", [])
        for p in s.get("ports", [])
    }


def _answering(url: str) -> set[str]:
    """The pods (their hostnames) that answered 16 GETs through the load balancer."""
    seen = set()
    for _ in range(16):
        try:
            with urllib.request.urlopen(url, timeout=5) as resp:
                seen.update(HOSTNAME.findall(resp.read().decode()))
        except OSError:  # no server up yet (the LB answers 503): not yet
            return set()
    return seen


def test_a_crash_into_the_standby_moves_the_endpoint_and_traffic_follows(
    cluster: LocalCluster,
) -> None:
    port = free_port()
    cluster.start_master("--lb-port-offset", str(port - 80))
    cluster.start_agent("a")  # the agent's defaults: standby sandboxes on
    url = f"http://127.0.0.1:{port}/"
    manifest = cluster.workdir / "sb.yaml"
    manifest.write_text(MANIFEST)
    cluster.cli("apply", "-f", str(manifest))
    pods = wait_for("2 ready pods", lambda: _ready(cluster), timeout=90)
    wait_for("both pods through the LB", lambda: _answering(url) == pods, timeout=60)

    # The standby of every pod made, and listed beside its container (from that listing on,
    # a crash replaces the container into the standby instead of starting it again).
    def standbys() -> dict[str, Any] | None:
        found = {
            c.labels["pinnace.pod"]: c
            for c in cluster.containers(holders=True)
            if LABEL_STANDBY in c.labels
        }
        return found if set(found) == pods else None

    holders = wait_for("a standby for each pod", standbys, timeout=60)
    log = cluster.workdir / "agent-a.log"
    apps = {c.labels["pinnace.pod"]: c for c in cluster.containers()}
    wait_for(
        "both containers listed with their standbys",
        lambda: all(
            f"container {c.id[:12]} listed with its standby" in log.read_text()
            for c in apps.values()
        ),
        timeout=30,
    )
    victim_pod = sorted(pods)[0]
    victim = apps[victim_pod]
    standby = holders[victim_pod]
    # The pod's address and ephemeral host port now, and what they become at its crash.
    before = (_own_ip(victim), _host_port(victim))
    after = (_own_ip(standby), _host_port(standby))
    assert after[0] != before[0] and after[1] != before[1], (before, after)
    assert f"127.0.0.1:{before[1]}" in _endpoints(cluster)

    with steady_load(url) as load:
        mark = load.served_after(0, 20)
        with load.hard_kill():
            victim.kill()

        def restarted() -> bool:
            statuses = [
                c
                for p in cluster.pods()
                if p["metadata"]["name"] == victim_pod
                for c in p["status"].get("containerStatuses", [])
            ]
            return bool(_ready(cluster) and statuses and statuses[0].get("restartCount", 0) >= 1)

        wait_for("the killed pod running again", restarted, timeout=60)
        # The replacement runs in the standby's namespace: the standby's address and port.
        (replacement,) = [c for c in cluster.containers() if c.labels["pinnace.pod"] == victim_pod]
        assert replacement.id != victim.id
        mode = replacement.attrs["HostConfig"]["NetworkMode"]
        assert mode == f"container:{standby.id}", mode
        assert (_own_ip(replacement), _host_port(replacement)) == after
        running = cluster.containers()
        wanted = {f"127.0.0.1:{_host_port(c)}" for c in running}
        assert f"127.0.0.1:{after[1]}" in wanted
        wait_for("the Service's endpoints at the new port", lambda: _endpoints(cluster) == wanted)
        servers = {f"{_own_ip(c)}:80" for c in running}
        assert f"{after[0]}:80" in servers
        wait_for(
            "HAProxy's servers at the pods' addresses now",
            lambda: _lb_servers(cluster) == servers,
            timeout=30,
        )
        wait_for("both pods through the LB again", lambda: _answering(url) == pods, timeout=60)
        load.served_after(mark, 100)

    load.check()
