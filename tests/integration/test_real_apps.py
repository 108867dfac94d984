"""Issue 17's multi-tier check in CI: Kubernetes' guestbook, unmodified, answering end to end.

tests/fixtures/real-manifests/guestbook-all-in-one.yaml as published (a Redis leader, two
followers, three PHP frontends, their three Services), applied to a master with two agents
that run node proxies and cluster DNS, on real Docker. The images are the stand-ins build.sh
makes (compose/images/standins: the same ports, variables and Service names as upstream's),
on pinnace/redis's base, which CI builds anyway. From this machine, through the frontend
Service's cluster IP: a message set (the frontend writes to the Service redis-master, by
name) is read back (the frontend reads from the Service redis-replica: a follower answers),
and both followers, which found the leader by its name too, report their link up.
tests/bench/apps.py runs the same check, and the voting app's, with timings.
"""

from __future__ import annotations

import time
import uuid
from typing import Any

import pytest

from tests.bench.apps import (
    APPS,
    FIXTURES,
    Cluster,
    followers_linked,
    guestbook,
    pod_counts,
    replicas_wanted,
)
from tests.integration.cluster import LocalCluster, wait_for
from tests.support import build_images, exec_output

pytestmark = [pytest.mark.integration, pytest.mark.timeout(600)]


@pytest.fixture(scope="module")
def guestbook_images() -> None:
    build_images("guestbook")


def _ready_nodes(cluster: LocalCluster) -> int:
    return sum(
        any(c["type"] == "Ready" and c["status"] == "True" for c in n["status"]["conditions"])
        for n in cluster.get_json("nodes")["items"]
    )


def test_the_guestbook_as_published_answers_through_its_services(
    cluster: LocalCluster, service_cidr: str, guestbook_images: None
) -> None:
    cluster.start_master("--no-lb", "--service-cidr", service_cidr)
    for short in ("a", "b"):
        cluster.start_agent(short, "--cluster-dns=auto", node_proxy=True)
    wait_for("both nodes Ready", lambda: _ready_nodes(cluster) == 2, timeout=60)
    cluster.cli("apply", "-f", str(FIXTURES / "guestbook-all-in-one.yaml"))
    wanted = replicas_wanted(APPS["guestbook"])

    def all_running() -> list[dict[str, Any]] | None:
        pods = cluster.pods()
        return pods if pod_counts(pods) == (wanted, wanted) else None

    pods = wait_for("the guestbook's 6 pods Running", all_running, timeout=120)
    assert {p["spec"]["nodeName"] for p in pods} == set(cluster.node_names)

    def cluster_ip(service: str) -> str:
        return str(cluster.get_json("services", service)["spec"]["clusterIP"])

    def containers(prefix: str) -> list[Any]:
        return [c for c in cluster.containers() if c.labels["pinnace.pod"].startswith(prefix)]

    probe = Cluster(cluster_ip, containers)
    message = f"hello-{uuid.uuid4().hex[:8]}"
    assert guestbook(probe, time.monotonic() + 60, message) == ""
    assert followers_linked(probe) == ""
    # The message is the leader's and every follower's: the write went to the leader, the
    # read was served by a follower (the frontend reads from nowhere else).
    for container in containers("redis-"):
        code, out = exec_output(container, ["redis-cli", "get", "messages"])
        assert (code, out.decode().strip()) == (0, message), container.name
