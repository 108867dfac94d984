"""A StatefulSet on real processes and Docker: stable names, a claim per ordinal, order.

Three replicas come up as web-0, web-1, web-2, each with its own claim; data written
by each survives a scale 3 -> 1 -> 3 (ordinal 2 gets its own claim back; the scale up
through kubectl and the statefulsets/scale subresource) and a
rolling update to a new template, which replaces pods from the highest ordinal down;
with whenDeleted: Delete, deleting the set removes its claims and their volumes.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tests.integration.cluster import LocalCluster, wait_for
from tests.integration.kube_helpers import Kubectl, kubectls, write_kubeconfig
from tests.support import exec_output

pytestmark = pytest.mark.integration

SET = """\
apiVersion: apps/v1
kind: StatefulSet
metadata:
  name: web
spec:
  serviceName: web
  replicas: {replicas}
  persistentVolumeClaimRetentionPolicy: {{whenDeleted: {when_deleted}}}
  selector:
    matchLabels: {{app: sts-web}}
  template:
    metadata:
      labels: {{app: sts-web}}
    spec:
      containers:
        - name: web
          image: pinnace/httpd:latest
          imagePullPolicy: IfNotPresent
          env: [{{name: MESSAGE, value: "{message}"}}]
          volumeMounts: [{{name: data, mountPath: /data}}]
  volumeClaimTemplates:
    - metadata: {{name: data}}
      spec:
        accessModes: [ReadWriteOnce]
        resources: {{requests: {{storage: 16Mi}}}}
"""


def _ready(cluster: LocalCluster) -> dict[str, dict[str, Any]]:
    return {
        p["metadata"]["name"]: p
        for p in cluster.pods()
        if p["status"].get("phase") == "Running"
        and not p["metadata"].get("deletionTimestamp")
        and all(c.get("ready") for c in p["status"].get("containerStatuses", []))
    }


def _sh(cluster: LocalCluster, pod: dict[str, Any], script: str) -> str:
    cid = pod["status"]["containerStatuses"][0]["containerID"].removeprefix("docker://")
    # it may run twice: Docker loses a short exec's output now and then (tests.support)
    code, out = exec_output(cluster.docker.containers.get(cid), ["sh", "-c", script])
    assert code == 0, out
    return out.decode()


def _wait_ready(cluster: LocalCluster, names: set[str], message: str = "v1") -> dict[str, Any]:
    def check() -> dict[str, Any] | None:
        pods = _ready(cluster)
        if set(pods) != names:
            return None
        messages = {_sh(cluster, p, "echo $MESSAGE").strip() for p in pods.values()}
        return pods if messages == {message} else None

    return wait_for(f"pods {sorted(names)} ready with {message}", check, timeout=120)


def test_stable_names_claims_per_ordinal_scale_and_rolling_update(
    cluster: LocalCluster, tmp_path: Path
) -> None:
    cluster.start_master("--no-lb")
    cluster.start_agent("n1")
    manifest = tmp_path / "sts.yaml"
    manifest.write_text(SET.format(replicas=3, message="v1", when_deleted="Retain"))
    out = cluster.cli("apply", "-f", str(manifest)).stdout
    assert "statefulset.apps/web created" in out

    pods = _wait_ready(cluster, {"web-0", "web-1", "web-2"})
    created = [pods[f"web-{i}"]["metadata"]["creationTimestamp"] for i in range(3)]
    assert created == sorted(created), "OrderedReady creates ordinals in order"
    for name, pod in pods.items():
        _sh(cluster, pod, f"echo {name} > /data/who")
    claims = {c["metadata"]["name"] for c in cluster.get_json("pvc")["items"]}
    assert claims == {"data-web-0", "data-web-1", "data-web-2"}
    assert "3/3" in cluster.cli("get", "sts", "web").stdout

    # 3 -> 1: the highest ordinals go, their claims stay
    cluster.cli("scale", "statefulset", "web", "--replicas", "1")
    _wait_ready(cluster, {"web-0"})
    assert len(cluster.get_json("pvc")["items"]) == 3

    # 1 -> 3 through the Kubernetes API (`kubectl scale` uses statefulsets/scale): web-2
    # comes back with its own data
    config = write_kubeconfig(cluster)
    binaries = kubectls()
    scaled = Kubectl(binaries[-1], config, tmp_path).run("scale", "sts/web", "--replicas=3")
    assert "statefulset.apps/web scaled" in scaled.stdout
    k = Kubectl(binaries[0], config, tmp_path)
    path = "/apis/apps/v1/namespaces/default/statefulsets/web/scale"
    got = json.loads(k.run("get", "--raw", path).stdout)
    assert (got["kind"], got["spec"]["replicas"], got["status"]["selector"]) == (
        "Scale", 3, "app=sts-web"
    )  # fmt: skip
    pods = _wait_ready(cluster, {"web-0", "web-1", "web-2"})
    for name, pod in pods.items():
        assert _sh(cluster, pod, "cat /data/who") == f"{name}\n"

    # a new template rolls out from the highest ordinal down; the data stays
    manifest.write_text(SET.format(replicas=3, message="v2", when_deleted="Retain"))
    cluster.cli("apply", "-f", str(manifest))
    pods = _wait_ready(cluster, {"web-0", "web-1", "web-2"}, message="v2")
    for name, pod in pods.items():
        assert _sh(cluster, pod, "cat /data/who") == f"{name}\n"
    events = cluster.cli("get", "events").stdout
    replaced = [line for line in events.splitlines() if "RollingUpdate" in line]
    order = [next(w for w in ("web-2", "web-1", "web-0") if w in line) for line in replaced]
    assert order[:3] == ["web-2", "web-1", "web-0"], replaced

    # whenDeleted: Delete, then the set deleted: its claims go once its pods are gone,
    # and with them (reclaim policy Delete) the volumes on the node
    manifest.write_text(SET.format(replicas=3, message="v2", when_deleted="Delete"))
    cluster.cli("apply", "-f", str(manifest))
    volumes = {c["spec"]["volumeName"] for c in cluster.get_json("pvc")["items"]}
    cluster.cli("delete", "statefulset", "web")
    wait_for(
        "the set's claims, volumes and node volumes gone",
        lambda: (
            not cluster.get_json("pvc")["items"]
            and not cluster.get_json("pv")["items"]
            and not any(
                cluster.docker.volumes.list(filters={"name": f"pinnace-{v}"}) for v in volumes
            )
        ),
        timeout=60,
    )
