"""configMap, secret and projected volumes on real processes and Docker.

The files are the objects' keys (items and modes as Kubernetes has them), kept
on a tmpfs (the secret's value is nowhere on disk: not in the SQLite file, not
under the agent's state dir), and follow an update of the object within seconds
without a restart; a pod whose ConfigMap is missing waits and starts when it
appears.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.integration.cluster import LocalCluster, wait_for

pytestmark = pytest.mark.integration

SECRET_VALUE = "s3cr3t-volume-value-9f4e"

CONFIG = """\
apiVersion: v1
kind: ConfigMap
metadata: {{name: app-config}}
data:
  app.conf: "{setting}"
  other: ignored
---
apiVersion: v1
kind: Secret
metadata: {{name: app-secret}}
stringData:
  password: {secret}
"""

APP = """\
apiVersion: apps/v1
kind: Deployment
metadata: {name: reader}
spec:
  replicas: 1
  selector:
    matchLabels: {app: reader}
  template:
    metadata:
      labels: {app: reader}
    spec:
      containers:
        - name: web
          image: pinnace/httpd:latest
          imagePullPolicy: IfNotPresent
          volumeMounts:
            - {name: config, mountPath: /etc/app}
            - {name: secret, mountPath: /etc/secret}
            - {name: all, mountPath: /etc/all}
      volumes:
        - name: all
          projected:
            sources:
              - configMap: {name: app-config, items: [{key: app.conf, path: conf}]}
              - secret: {name: app-secret}
              - downwardAPI:
                  items:
                    - {path: name, fieldRef: {fieldPath: metadata.name}}
                    - {path: labels, fieldRef: {fieldPath: metadata.labels}}
        - name: config
          configMap:
            name: app-config
            items: [{key: app.conf, path: conf/app.conf, mode: 0400}]
        - name: secret
          secret: {secretName: app-secret}
"""


def _pod(cluster: LocalCluster) -> dict[str, Any] | None:
    for p in cluster.pods():
        statuses = p["status"].get("containerStatuses", [])
        if p["status"].get("phase") == "Running" and statuses and statuses[0].get("ready"):
            return p
    return None


def _sh(cluster: LocalCluster, pod: dict[str, Any], script: str) -> str:
    cid = pod["status"]["containerStatuses"][0]["containerID"].removeprefix("docker://")
    code, out = cluster.docker.containers.get(cid).exec_run(["sh", "-c", script])
    assert code == 0 and isinstance(out, bytes), out
    return out.decode()


def test_config_and_secret_files_on_tmpfs_follow_updates_and_wait_for_the_object(
    cluster: LocalCluster, tmp_path: Path
) -> None:
    cluster.start_master("--no-lb")
    cluster.start_agent("n1")
    manifests = tmp_path / "manifests"  # the user's files: the only place the value may be
    manifests.mkdir()
    app = manifests / "app.yaml"
    app.write_text(APP)
    cluster.cli("apply", "-f", str(app))

    # No ConfigMap yet: the pod waits and says why
    def waiting() -> str | None:
        for p in cluster.pods():
            for c in p["status"].get("containerStatuses", []):
                if c.get("state", {}).get("waiting", {}).get("reason") == (
                    "CreateContainerConfigError"
                ):
                    return str(c["state"]["waiting"].get("message", ""))
        return None

    message = wait_for("the pod waiting for its ConfigMap", waiting, timeout=60)
    assert 'configmap "app-config" not found' in message

    config = manifests / "config.yaml"
    config.write_text(CONFIG.format(setting="v1", secret=SECRET_VALUE))
    cluster.cli("apply", "-f", str(config))
    pod = wait_for("the pod running", lambda: _pod(cluster), timeout=60)
    assert _sh(cluster, pod, "cat /etc/app/conf/app.conf") == "v1"
    assert _sh(cluster, pod, "ls /etc/app/conf") == "app.conf\n"  # items: only that key
    assert _sh(cluster, pod, "stat -c %a /etc/app/conf/app.conf") == "400\n"
    assert _sh(cluster, pod, "cat /etc/secret/password") == SECRET_VALUE
    mounts = _sh(cluster, pod, "cat /proc/mounts")
    assert any(" /etc/secret tmpfs " in line for line in mounts.splitlines()), mounts
    # a projected volume: a key, a secret and the pod's own fields in one directory
    assert _sh(cluster, pod, "cat /etc/all/conf /etc/all/password") == "v1" + SECRET_VALUE
    assert _sh(cluster, pod, "cat /etc/all/name") == pod["metadata"]["name"]
    assert 'app="reader"' in _sh(cluster, pod, "cat /etc/all/labels")

    # an update reaches the running container without a restart
    config.write_text(CONFIG.format(setting="v2", secret=SECRET_VALUE))
    cluster.cli("apply", "-f", str(config))
    wait_for(
        "the files updated in place",
        lambda: _sh(cluster, pod, "cat /etc/app/conf/app.conf /etc/all/conf") == "v2v2",
        timeout=30,
    )
    assert _pod(cluster)["status"]["containerStatuses"][0]["restartCount"] == 0  # type: ignore[index]

    # the secret's value is on no disk the project writes
    secret = SECRET_VALUE.encode()
    for root in (cluster.workdir, Path.home() / ".pinnace"):
        for path in root.rglob("*") if root.exists() else ():
            if path.is_file() and not path.is_symlink() and manifests not in path.parents:
                assert secret not in path.read_bytes(), path
