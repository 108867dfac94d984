"""Pod volumes and node-local claims on real processes and Docker.

A claim's data survives a container kill, a pod delete (the replacement lands on
the claim's node) and an agent restart; a pod whose claim lives on a dead node
stays Pending and says why instead of starting elsewhere empty; an emptyDir is
shared by its pod's restarts and dies with the pod; a memory emptyDir is a tmpfs.
"""

from __future__ import annotations

import signal
from pathlib import Path
from typing import Any

import pytest

from tests.integration.cluster import LocalCluster, wait_for

pytestmark = pytest.mark.integration

APP = """\
apiVersion: v1
kind: PersistentVolumeClaim
metadata:
  name: data
spec:
  accessModes: [ReadWriteOnce]
  resources:
    requests:
      storage: 64Mi
---
apiVersion: apps/v1
kind: Deployment
metadata:
  name: keeper
spec:
  replicas: 1
  selector:
    matchLabels: {app: keeper}
  template:
    metadata:
      labels: {app: keeper}
    spec:
      containers:
        - name: web
          image: pinnace/httpd:latest
          imagePullPolicy: IfNotPresent
          volumeMounts:
            - {name: data, mountPath: /data}
            - {name: scratch, mountPath: /scratch}
            - {name: fast, mountPath: /fast}
      volumes:
        - name: data
          persistentVolumeClaim: {claimName: data}
        - name: scratch
          emptyDir: {}
        - name: fast
          emptyDir: {medium: Memory, sizeLimit: 8Mi}
"""


def _running_pod(cluster: LocalCluster) -> dict[str, Any] | None:
    pods = [
        p
        for p in cluster.pods()
        if p["status"].get("phase") == "Running"
        and not p["metadata"].get("deletionTimestamp")
        and p["status"].get("containerStatuses", [{}])[0].get("ready")
    ]
    return pods[0] if len(pods) == 1 else None


def _container(cluster: LocalCluster, pod: dict[str, Any]) -> Any:
    cid = pod["status"]["containerStatuses"][0]["containerID"].removeprefix("docker://")
    return cluster.docker.containers.get(cid)


def _sh(cluster: LocalCluster, pod: dict[str, Any], script: str) -> str:
    code, out = _container(cluster, pod).exec_run(["sh", "-c", script])
    assert code == 0, out
    return str(out.decode())


def _wait_pod(cluster: LocalCluster, other_than: str = "") -> dict[str, Any]:
    return wait_for(
        "one running pod",
        lambda: (lambda p: p if p and p["metadata"]["name"] != other_than else None)(
            _running_pod(cluster)
        ),
        timeout=60,
    )


def test_claim_data_survives_kill_delete_and_agent_restart_and_waits_for_its_node(
    cluster: LocalCluster, tmp_path: Path
) -> None:
    cluster.start_master("--no-lb")
    n1 = cluster.start_agent("n1")
    manifest = tmp_path / "app.yaml"
    manifest.write_text(APP)
    cluster.cli("apply", "-f", str(manifest))
    pod = _wait_pod(cluster)
    assert pod["spec"]["nodeName"] == n1

    pvc = cluster.get_json("pvc", "data")
    assert pvc["status"]["phase"] == "Bound"
    volume = pvc["spec"]["volumeName"]
    assert cluster.get_json("pv", volume)["spec"]["claimRef"]["name"] == "data"
    assert "Bound" in cluster.cli("get", "pvc").stdout
    _sh(cluster, pod, "echo kept > /data/k; echo scratch > /scratch/s; echo fast > /fast/f")
    mounts = _sh(cluster, pod, "cat /proc/mounts")
    assert any(" /fast tmpfs " in line for line in mounts.splitlines()), mounts

    # container killed -> restarted in place: the claim and the emptyDir keep their files
    _container(cluster, pod).kill()
    wait_for(
        "the container restarted",
        lambda: (lambda p: p and p["status"]["containerStatuses"][0]["restartCount"] >= 1)(
            _running_pod(cluster)
        ),
        timeout=60,
    )
    pod = _wait_pod(cluster)
    assert _sh(cluster, pod, "cat /data/k /scratch/s") == "kept\nscratch\n"

    # agent restarted -> the same containers are adopted, the data is still there
    cluster.kill(cluster.agents[n1], signal.SIGTERM)
    cluster.start_agent("n1")
    pod = _wait_pod(cluster)
    assert _sh(cluster, pod, "cat /data/k") == "kept\n"

    # pod deleted -> its replacement has the claim's data and a fresh emptyDir
    old = pod["metadata"]["name"]
    cluster.cli("delete", "pod", old)
    pod = _wait_pod(cluster, other_than=old)
    assert _sh(cluster, pod, "cat /data/k; ls /scratch | wc -l") == "kept\n0\n"
    old_scratch = f"pinnace-{n1}-{old}-scratch"
    wait_for(
        "the deleted pod's emptyDir volume removed",
        lambda: not cluster.docker.volumes.list(filters={"name": old_scratch}),
        timeout=90,
    )

    # the claim is in use: deleting it is refused with the pod's name
    refused = cluster.cli("delete", "pvc", "data", check=False)
    assert refused.returncode == 1
    assert "is used by pod" in refused.stderr

    # n1 dies; a second node joins: the pod is NOT started there with an empty volume
    n2 = cluster.start_agent("n2")
    cluster.kill(cluster.agents[n1], signal.SIGKILL)
    for c in cluster.docker.containers.list(filters={"label": f"pinnace.node={n1}"}):
        c.kill()

    def pending_with_reason() -> str | None:
        pods = [p for p in cluster.pods() if not p["metadata"].get("deletionTimestamp")]
        for p in pods:
            assert p["spec"].get("nodeName") != n2, "the pod moved away from its data"
            message = p["status"].get("message", "")
            if not p["spec"].get("nodeName") and "keeps its data on node" in message:
                return str(message)
        return None

    message = wait_for("the pod pending on its claim's node", pending_with_reason, timeout=60)
    assert n1 in message and '"data"' in message


def test_a_claim_asking_for_shared_storage_is_refused_with_the_reason(
    cluster: LocalCluster, tmp_path: Path
) -> None:
    cluster.start_master("--no-lb")
    manifest = tmp_path / "rwx.yaml"
    manifest.write_text(APP.replace("[ReadWriteOnce]", "[ReadWriteMany]"))

    result = cluster.cli("apply", "-f", str(manifest), check=False)

    assert result.returncode == 1
    assert "spec.accessModes[0]: ReadWriteMany needs storage shared between nodes" in (
        result.stderr
    )
    assert cluster.get_json("pvc")["items"] == []
