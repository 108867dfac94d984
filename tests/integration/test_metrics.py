"""/metrics on a real master (with its HAProxy) and a real agent on Docker: the series an
operator needs are there, and they move when pods are scheduled, probed and killed.

Both serve on 127.0.0.1 port 0 (`--metrics-listen 127.0.0.1:0`); the address comes from the
line each logs. Values are read as differences from a scrape taken before the work, since
the counters start with the process.
"""

from __future__ import annotations

import re
import socket
import ssl
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from tests.integration.cluster import LocalCluster, wait_for
from tests.support import free_port, require_haproxy

pytestmark = pytest.mark.integration

IMAGE = "pinnace/httpd:latest"
Scrape = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def _metrics_url(log: Path) -> str:
    def find() -> str | None:
        text = log.read_text() if log.exists() else ""
        found = re.search(r"metrics on (http://\S+/metrics)", text)
        return found.group(1) if found else None

    return wait_for(f"the metrics address in {log.name}", find, timeout=30)


def scrape(url: str) -> Scrape:
    with urllib.request.urlopen(url, timeout=10) as resp:
        assert resp.status == 200
        assert resp.headers["Content-Type"].startswith("text/plain")
        text = resp.read().decode()
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def value(samples: Scrape, name: str, **labels: str) -> float:
    """The sample's value; 0 when absent (a labelled child not yet created)."""
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


def total(samples: Scrape, name: str, **labels: str) -> float:
    """Sum over every sample of `name` whose labels include `labels`."""
    return sum(
        v
        for (n, ls), v in samples.items()
        if n == name and all((k, want) in ls for k, want in labels.items())
    )


def _manifests(replicas: int) -> str:
    probe = {"httpGet": {"path": "/healthz", "port": 80}, "periodSeconds": 1}
    container = {
        "name": "web",
        "image": IMAGE,
        "imagePullPolicy": "Never",
        "ports": [{"containerPort": 80}],
        "readinessProbe": probe,
    }
    deployment = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "metered"},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": "metered"}},
            "template": {
                "metadata": {"labels": {"app": "metered"}},
                "spec": {"containers": [container], "terminationGracePeriodSeconds": 1},
            },
        },
    }
    service = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": "metered"},
        "spec": {"selector": {"app": "metered"}, "ports": [{"port": 80, "targetPort": 80}]},
    }
    return yaml.safe_dump_all([deployment, service])


def _ready_pods(cluster: LocalCluster) -> list[dict[str, Any]]:
    return [
        p
        for p in cluster.pods()
        if p["status"].get("phase") == "Running"
        and all(c.get("ready") for c in p["status"].get("containerStatuses") or [{}])
    ]


def _until(url: str, what: str, check: Callable[[Scrape], bool]) -> Scrape:
    def poll() -> Scrape | None:
        samples = scrape(url)
        return samples if check(samples) else None

    return wait_for(what, poll, timeout=60, interval=0.5)


def test_metrics_move_when_pods_are_scheduled_probed_and_killed(
    cluster: LocalCluster, tmp_path: Path
) -> None:
    require_haproxy()
    lb_port = free_port()
    cluster.start_master("--lb-port-offset", str(lb_port - 80), "--metrics-listen", "127.0.0.1:0")
    master = _metrics_url(cluster.workdir / "master.log")
    alone = scrape(master)  # no agent yet
    node = cluster.start_agent("n1", "--metrics-listen", "127.0.0.1:0")
    agent = _metrics_url(cluster.workdir / "agent-n1.log")
    wait_for(
        "node Ready",
        lambda: value(scrape(master), "pinnace_node_lease_age_seconds", node=node) or None,
    )
    m0, a0 = scrape(master), scrape(agent)

    # Scheduled and probed: two pods bound, created, ready through their readiness probes.
    manifest = tmp_path / "metered.yaml"
    manifest.write_text(_manifests(2))
    cluster.cli("apply", "-f", str(manifest))
    wait_for("2 ready pods", lambda: len(_ready_pods(cluster)) == 2)
    m1 = _until(
        master,
        "2 Running pods in pinnace_pods",
        lambda s: value(s, "pinnace_pods", phase="Running") == 2,
    )
    a1 = scrape(agent)

    scheduled = "pinnace_scheduler_schedule_attempts_total"
    assert value(m1, scheduled, result="scheduled") - value(m0, scheduled, result="scheduled") == 2
    latency = "pinnace_scheduler_pod_scheduling_duration_seconds_count"
    assert value(m1, latency) - value(m0, latency) == 2
    assert value(m1, "pinnace_scheduler_pending_pods") == 0
    assert value(m1, "pinnace_pods", phase="Pending") == 0
    apply_ok = {"grpc_method": "ApplyManifests", "grpc_code": "OK"}
    grpc = "pinnace_grpc_server_handling_seconds_count"
    assert total(m1, grpc, **apply_ok) - total(m0, grpc, **apply_ok) == 1
    # Heartbeats come every second; on a quiet machine the pods above were ready within the
    # first one (0.64 s after registering, a CI run), so the counter is waited for.
    beats = "pinnace_node_heartbeats_total"
    _until(master, "a heartbeat counted", lambda s: value(s, beats) > value(m0, beats))
    assert 0 <= value(m1, "pinnace_node_lease_age_seconds", node=node) < 3
    # The heartbeat budget (cut while the loop is late on a busy machine, never below an
    # eighth of its cap) and the plans: one session on the cluster's 1 s plan, none before.
    assert value(m1, "pinnace_node_heartbeat_budget_cap_per_second") == 250
    assert 250 / 8 <= value(m1, "pinnace_node_heartbeat_budget_per_second") <= 250
    assert value(m1, "pinnace_node_heartbeat_interval_seconds") == 1
    sessions, planned = "pinnace_node_sessions", "pinnace_node_heartbeat_planned_per_second"
    assert (value(alone, sessions, heartbeat_interval="1"), value(alone, planned)) == (0, 0)
    assert (value(m1, sessions, heartbeat_interval="1"), value(m1, planned)) == (1, 1)
    assert value(m1, "pinnace_store_write_duration_seconds_count") > value(
        m0, "pinnace_store_write_duration_seconds_count"
    )
    assert value(m1, "pinnace_store_write_batch_size_sum") > value(
        m0, "pinnace_store_write_batch_size_sum"
    )
    reconcile = "pinnace_controller_reconcile_duration_seconds_count"
    for controller in ("nodes", "deployment", "scheduler", "loadbalancer"):
        assert value(m1, reconcile, controller=controller) > value(
            m0, reconcile, controller=controller
        )
    assert ("pinnace_controller_queue_depth", (("controller", "deployment"),)) in m1
    assert value(m1, "pinnace_lb_program_duration_seconds_count") > value(
        m0, "pinnace_lb_program_duration_seconds_count"
    )
    assert value(m1, "pinnace_lb_program_failures_total") == 0
    assert value(m1, "process_resident_memory_bytes") > 0

    ops = "pinnace_agent_container_operation_duration_seconds_count"
    assert value(a1, ops, operation="create") - value(a0, ops, operation="create") == 2
    assert value(a1, ops, operation="list") > value(a0, ops, operation="list")
    probes = "pinnace_agent_probe_results_total"
    assert value(a1, probes, probe="readiness", result="success") >= 2
    assert value(a1, "pinnace_agent_container_operation_errors_total", operation="create") == 0

    # The Kubernetes API, asked without a client certificate: a 401, timed and counted.
    insecure = ssl.create_default_context()
    insecure.check_hostname = False
    insecure.verify_mode = ssl.CERT_NONE  # only to our own master on 127.0.0.1
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(f"{cluster.api_url}/api/v1/pods", timeout=10, context=insecure)
    assert refused.value.code == 401
    kube = "pinnace_kube_api_request_duration_seconds_count"
    assert total(scrape(master), kube, verb="GET", resource="pods", code="401") == 1

    # Killed: a pod deleted by the user is stopped and replaced (scheduled again); an unknown
    # object is a NOT_FOUND call.
    victim = _ready_pods(cluster)[0]["metadata"]["name"]
    cluster.cli("delete", "pod", victim)
    assert cluster.cli("get", "deployment", "no-such", check=False).returncode == 1
    m2 = _until(
        master,
        "a third pod scheduled",
        lambda s: (
            value(s, scheduled, result="scheduled") - value(m0, scheduled, result="scheduled") == 3
        ),
    )
    a2 = _until(
        agent,
        "the deleted pod's container stopped and removed, its replacement created",
        lambda s: (
            value(s, ops, operation="stop") > value(a1, ops, operation="stop")
            and value(s, ops, operation="remove") > value(a1, ops, operation="remove")
            and value(s, ops, operation="create") - value(a0, ops, operation="create") == 3
        ),
    )
    assert total(m2, grpc, grpc_method="DeleteObjects", grpc_code="OK") >= 1
    assert total(m2, grpc, grpc_code="NOT_FOUND") >= 1
    wait_for("2 ready pods again", lambda: len(_ready_pods(cluster)) == 2)
    a3 = _until(
        agent,
        "the replacement probed",
        lambda s: (
            value(s, probes, probe="readiness", result="success")
            > value(a2, probes, probe="readiness", result="success")
        ),
    )
    assert value(a3, probes, probe="readiness", result="success") > value(
        a1, probes, probe="readiness", result="success"
    )


def test_a_taken_metrics_port_is_one_clear_sentence(cluster: LocalCluster) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        refused = subprocess.run(
            [
                *(sys.executable, "-m", "master.cli.main", "master", "--listen", "127.0.0.1:0"),
                *("--data-dir", str(cluster.workdir / "refused"), "--no-lb", "--insecure"),
                *("--api-listen", "", "--metrics-listen", f"127.0.0.1:{port}"),
            ],
            capture_output=True,
            text=True,
            timeout=60,
            env=cluster.env,
        )
        assert refused.returncode == 1
        assert refused.stdout == ""
        assert (
            f"pinnace master: --metrics-listen 127.0.0.1:{port}: Address already in use"
            in refused.stderr
        )
        assert "Traceback" not in refused.stderr
        cluster.start_master("--no-lb", "--insecure")
        agent = cluster.start_agent("n1", "--metrics-listen", f"127.0.0.1:{port}")
        proc = cluster.agents[agent]
        assert proc.wait(timeout=30) == 1
    log = (cluster.workdir / "agent-n1.log").read_text()
    assert f"pinnace agent: --metrics-listen 127.0.0.1:{port}: Address already in use" in log
    assert "Traceback" not in log
