"""configMap, secret and projected volumes on real processes and Docker.

The files are the objects' keys (items and modes as Kubernetes has them), kept
on a tmpfs (the secret's value is nowhere on disk: not in the SQLite file, not
under the agent's state dir), and follow an update of the ConfigMap and of the
Secret within seconds without a restart; a pod whose ConfigMap is missing waits and
starts when it appears. securityContext: a pod runs as its user and groups with its fsGroup owning
its volumes (claim, emptyDirs, secret files); runAsNonRoot refuses a root image.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.integration.cluster import LocalCluster, wait_for
from tests.support import exec_output

pytestmark = pytest.mark.integration

SECRET_VALUE = "s3cr3t-volume-value-9f4e"
# The Secret after its update: the mounted files must follow it too.
NEW_SECRET_VALUE = "s3cr3t-volume-value-2b7d"

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


# securityContext: a user, a group, an fsGroup owning the volumes, a read-only root; and
# a pod refused because its image (no USER: root) would run as root.
SECURE = """\
apiVersion: v1
kind: PersistentVolumeClaim
metadata:
  name: secure
spec:
  accessModes: [ReadWriteOnce]
  resources:
    requests:
      storage: 16Mi
---
apiVersion: apps/v1
kind: Deployment
metadata:
  name: secure
spec:
  replicas: 1
  selector:
    matchLabels: {app: secure}
  template:
    metadata:
      labels: {app: secure}
    spec:
      securityContext:
        {runAsUser: 1000, runAsGroup: 3000, fsGroup: 2000, supplementalGroups: [4000]}
      containers:
        - name: web
          image: pinnace/httpd:latest
          imagePullPolicy: IfNotPresent
          command: [sleep, "3600"]
          securityContext: {runAsNonRoot: true, readOnlyRootFilesystem: true}
          volumeMounts:
            - {name: claim, mountPath: /claim}
            - {name: scratch, mountPath: /scratch}
            - {name: shm, mountPath: /shm}
            - {name: secret, mountPath: /secret}
      volumes:
        - name: secret
          secret: {secretName: app-secret, defaultMode: 0400}
        - name: claim
          persistentVolumeClaim: {claimName: secure}
        - name: scratch
          emptyDir: {}
        - name: shm
          emptyDir: {medium: Memory, sizeLimit: 4Mi}
---
apiVersion: apps/v1
kind: Deployment
metadata:
  name: rootless
spec:
  replicas: 1
  selector:
    matchLabels: {app: rootless}
  template:
    metadata:
      labels: {app: rootless}
    spec:
      securityContext: {runAsNonRoot: true}
      containers:
        - name: web
          image: pinnace/httpd:latest
          imagePullPolicy: IfNotPresent
"""


def _security_context_applies_and_run_as_non_root_refuses(cluster: LocalCluster) -> None:
    """The process is the user and groups asked for, writes to its claim and emptyDirs
    (the fsGroup owns them, setgid) and not to its read-only root, and reads its secret
    (mode 0400, made 0440 for the fsGroup, as the kubelet does); a pod whose image
    would run as root waits in CreateContainerConfigError with the kubelet's words."""
    pod = wait_for("the secure pod running", lambda: _pod(cluster, "secure"), 60)
    ids = _sh(cluster, pod, "id").split()
    assert ids[:2] == ["uid=1000", "gid=3000"], ids
    assert {"2000", "4000"} <= set(ids[2].removeprefix("groups=").split(",")), ids
    out = _sh(
        cluster,
        pod,
        "for d in /claim /scratch /shm; do echo x > $d/f && stat -c '%g %A' $d $d/f; done",
    )
    lines = out.splitlines()
    assert [line.split()[0] for line in lines] == ["2000"] * 6, out
    assert all(line.split()[1][6] == "s" for line in lines[0::2]), out  # setgid directories
    assert _sh(cluster, pod, "cat /secret/password; stat -c '%a %g' /secret/password") == (
        f"{SECRET_VALUE}440 2000\n"
    )
    assert "Read-only file system" in _sh(cluster, pod, "touch /rootfile 2>&1 || true")
    # fsGroupChangePolicy unset is Always, as on Kubernetes: the claim's next pod gets the
    # whole tree back though its root still matches (OnRootMismatch would leave f alone).
    _sh(cluster, pod, "chgrp 0 /claim/f && chmod 600 /claim/f", user="0:0")  # (no passwd)
    old = pod["metadata"]["name"]
    cluster.cli("delete", "pod", old, "--grace-period", "0")
    pod = wait_for(
        "the secure pod replaced",
        lambda: next((p for p in _pods(cluster, "secure") if p["metadata"]["name"] != old), None),
        60,
    )
    assert _sh(cluster, pod, "stat -c '%g %a' /claim /claim/f") == "2000 2775\n2000 660\n"

    def refusal() -> str | None:
        pods = [p for p in cluster.pods() if p["metadata"]["labels"].get("app") == "rootless"]
        statuses = pods[0]["status"].get("containerStatuses", []) if pods else []
        waiting = statuses[0].get("state", {}).get("waiting", {}) if statuses else {}
        if waiting.get("reason") == "CreateContainerConfigError":
            return f"{pods[0]['metadata']['name']}_default({pods[0]['metadata']['uid']})|" + str(
                waiting.get("message")
            )
        return None

    name, message = wait_for("the rootless pod refused", refusal, 60).split("|", 1)
    assert message == (
        f'container has runAsNonRoot and image will run as root (pod: "{name}", container: web)'
    )
    cluster.cli("delete", "deployment", "secure")
    cluster.cli("delete", "deployment", "rootless")


def _pods(cluster: LocalCluster, app: str) -> list[dict[str, Any]]:
    """The running, ready pods of `app`."""
    found = []
    for p in cluster.pods():
        if p["metadata"].get("labels", {}).get("app") != app:
            continue
        statuses = p["status"].get("containerStatuses", [])
        if p["status"].get("phase") == "Running" and statuses and statuses[0].get("ready"):
            found.append(p)
    return found


def _pod(cluster: LocalCluster, app: str = "reader") -> dict[str, Any] | None:
    return next(iter(_pods(cluster, app)), None)


def _sh(cluster: LocalCluster, pod: dict[str, Any], script: str, user: str = "") -> str:
    cid = pod["status"]["containerStatuses"][0]["containerID"].removeprefix("docker://")
    # it may run twice: Docker loses a short exec's output now and then (tests.support)
    code, out = exec_output(cluster.docker.containers.get(cid), ["sh", "-c", script], user=user)
    assert code == 0, out
    return out.decode()


def test_config_and_secret_files_on_tmpfs_follow_updates_and_wait_for_the_object(
    cluster: LocalCluster, tmp_path: Path
) -> None:
    cluster.start_master("--no-lb")
    cluster.start_agent("n1")
    manifests = tmp_path / "manifests"  # the user's files: the only place the value may be
    manifests.mkdir()
    app = manifests / "app.yaml"
    app.write_text(APP + "---\n" + SECURE)
    cluster.cli("apply", "-f", str(app))

    # No ConfigMap yet: the pod waits and says why
    def waiting() -> str | None:
        for p in cluster.pods():
            if p["metadata"].get("labels", {}).get("app") != "reader":
                continue
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
    _security_context_applies_and_run_as_non_root_refuses(cluster)

    # an update of the ConfigMap and of the Secret reaches the running container (the
    # secret volume, still on its tmpfs, and the projected one) without a restart
    config.write_text(CONFIG.format(setting="v2", secret=NEW_SECRET_VALUE))
    cluster.cli("apply", "-f", str(config))
    files = "/etc/app/conf/app.conf /etc/all/conf /etc/secret/password /etc/all/password"
    wait_for(
        "the files updated in place",
        lambda: _sh(cluster, pod, f"cat {files}") == "v2v2" + NEW_SECRET_VALUE * 2,
        timeout=30,
    )
    mounts = _sh(cluster, pod, "cat /proc/mounts")
    assert any(" /etc/secret tmpfs " in line for line in mounts.splitlines()), mounts
    assert _pod(cluster)["status"]["containerStatuses"][0]["restartCount"] == 0  # type: ignore[index]

    # neither of the secret's values is on a disk the project writes
    for root in (cluster.workdir, Path.home() / ".pinnace"):
        for path in root.rglob("*") if root.exists() else ():
            if path.is_file() and not path.is_symlink() and manifests not in path.parents:
                for secret in (SECRET_VALUE.encode(), NEW_SECRET_VALUE.encode()):
                    assert secret not in path.read_bytes(), path
