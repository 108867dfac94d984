"""volumeMount subPath and readOnly, and hostPath types, on real processes and Docker.

subPath on an emptyDir and on a claim mounts that subdirectory of the volume (made when
missing, as Kubernetes makes it): what a pod writes there lands in it, and two mounts
of different subPaths of one volume see different files -- on an engine older than API
1.45 too, which drops Docker's own Subpath and would mount the whole volume. A readOnly
mount refuses writes; a hostPath DirectoryOrCreate makes its directory on the node, a
File mounts the node's file, and a File that is a directory waits in
CreateContainerError with the kubelet's sentence instead of mounting it; so does a
subPath that a pod turned into a symbolic link out of the volume.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.integration.cluster import LocalCluster, wait_for
from tests.support import exec_output

pytestmark = pytest.mark.integration

APP = """\
apiVersion: v1
kind: PersistentVolumeClaim
metadata:
  name: notes
spec:
  accessModes: [ReadWriteOnce]
  resources:
    requests:
      storage: 16Mi
---
apiVersion: apps/v1
kind: Deployment
metadata:
  name: mounts
spec:
  replicas: 1
  selector:
    matchLabels: {{app: mounts}}
  template:
    metadata:
      labels: {{app: mounts}}
    spec:
      containers:
        - name: web
          image: pinnace/httpd:latest
          imagePullPolicy: IfNotPresent
          volumeMounts:
            - {{name: scratch, mountPath: /one, subPath: one/deep}}
            - {{name: scratch, mountPath: /two, subPath: two}}
            - {{name: scratch, mountPath: /scratch}}
            - {{name: scratch, mountPath: /scratch-ro, readOnly: true}}
            - {{name: notes, mountPath: /logs, subPath: logs}}
            - {{name: notes, mountPath: /notes}}
            - {{name: made, mountPath: /made}}
            - {{name: conf, mountPath: /etc/app.conf, readOnly: true}}
      volumes:
        - name: scratch
          emptyDir: {{}}
        - name: notes
          persistentVolumeClaim: {{claimName: notes}}
        - name: made
          hostPath: {{path: {host}/new/dir, type: DirectoryOrCreate}}
        - name: conf
          hostPath: {{path: {host}/app.conf, type: File}}
---
apiVersion: apps/v1
kind: Deployment
metadata:
  name: wrong
spec:
  replicas: 1
  selector:
    matchLabels: {{app: wrong}}
  template:
    metadata:
      labels: {{app: wrong}}
    spec:
      containers:
        - name: web
          image: pinnace/httpd:latest
          imagePullPolicy: IfNotPresent
          volumeMounts:
            - {{name: conf, mountPath: /etc/app.conf}}
      volumes:
        - name: conf
          hostPath: {{path: {host}, type: File}}
"""


# A second pod of the claim (ReadWriteOnce: same node) whose subPath is a link the first
# pod planted, pointing out of the volume at the node's /etc.
ESCAPE = """\
apiVersion: apps/v1
kind: Deployment
metadata:
  name: escape
spec:
  replicas: 1
  selector:
    matchLabels: {app: escape}
  template:
    metadata:
      labels: {app: escape}
    spec:
      containers:
        - name: web
          image: pinnace/httpd:latest
          imagePullPolicy: IfNotPresent
          volumeMounts:
            - {name: notes, mountPath: /stolen, subPath: evil}
      volumes:
        - name: notes
          persistentVolumeClaim: {claimName: notes}
"""


def _running(cluster: LocalCluster, app: str) -> dict[str, Any] | None:
    for p in cluster.pods():
        statuses = p["status"].get("containerStatuses", [])
        if (
            p["metadata"].get("labels", {}).get("app") == app
            and p["status"].get("phase") == "Running"
            and statuses
            and statuses[0].get("ready")
        ):
            return p
    return None


def _waiting(cluster: LocalCluster, app: str) -> dict[str, Any] | None:
    """The app's container's waiting state once the agent has a verdict: ContainerCreating
    (what a new pod shows while its agent works on it, as in Kubernetes) is no verdict."""
    for p in cluster.pods():
        if p["metadata"].get("labels", {}).get("app") != app:
            continue
        for c in p["status"].get("containerStatuses", []):
            waiting = c.get("state", {}).get("waiting", {})
            if waiting.get("reason") not in (None, "", "ContainerCreating"):
                return dict(waiting)
    return None


def _sh(cluster: LocalCluster, pod: dict[str, Any], script: str) -> tuple[int, str]:
    """The script's exit status and output; it may run twice (Docker loses a short exec's
    output now and then, tests.support.exec_output), so every script here leaves the same
    result when run again."""
    cid = pod["status"]["containerStatuses"][0]["containerID"].removeprefix("docker://")
    code, out = exec_output(cluster.docker.containers.get(cid), ["sh", "-c", script])
    return code, out.decode()


def _ok(cluster: LocalCluster, pod: dict[str, Any], script: str) -> str:
    code, out = _sh(cluster, pod, script)
    assert code == 0, out
    return out


def test_sub_path_read_only_and_host_path_types(cluster: LocalCluster, tmp_path: Path) -> None:
    host = tmp_path / "host"
    host.mkdir()
    (host / "app.conf").write_text("setting=1\n")
    cluster.start_master("--no-lb")
    cluster.start_agent("n1")
    manifest = tmp_path / "app.yaml"
    manifest.write_text(APP.format(host=host))
    cluster.cli("apply", "-f", str(manifest))
    pod = wait_for("the mounts pod running", lambda: _running(cluster, "mounts"), 60)

    # subPath of an emptyDir: each mount is its own subdirectory, made when missing
    _ok(cluster, pod, "echo one > /one/f && echo two > /two/f")
    assert _ok(cluster, pod, "cat /one/f /two/f") == "one\ntwo\n"
    assert _ok(cluster, pod, "cat /scratch/one/deep/f /scratch/two/f") == "one\ntwo\n"
    assert _ok(cluster, pod, "ls -a /scratch").split() == [".", "..", "one", "two"]

    # subPath of a claim: the file lands in that subdirectory of the claim
    _ok(cluster, pod, "echo kept > /logs/l")
    assert _ok(cluster, pod, "cat /notes/logs/l") == "kept\n"
    assert _sh(cluster, pod, "test -e /notes/l")[0] != 0

    # readOnly: the same volume, and the writes refused
    code, out = _sh(cluster, pod, "echo x > /scratch-ro/y")
    assert code != 0 and "Read-only file system" in out, out
    assert _ok(cluster, pod, "cat /scratch-ro/two/f") == "two\n"

    # hostPath DirectoryOrCreate made on the node; File mounts the node's file, read-only
    assert (host / "new" / "dir").is_dir()
    _ok(cluster, pod, "echo m > /made/m")
    assert (host / "new" / "dir" / "m").read_text() == "m\n"
    assert _ok(cluster, pod, "cat /etc/app.conf") == "setting=1\n"
    code, out = _sh(cluster, pod, "echo x >> /etc/app.conf")
    assert code != 0 and "Read-only file system" in out, out

    # hostPath File that is a directory: refused with the kubelet's words, never mounted
    waiting = wait_for("the wrong pod refused", lambda: _waiting(cluster, "wrong"), 60)
    assert waiting["reason"] == "CreateContainerError", waiting
    assert (
        f'MountVolume.SetUp failed for volume "conf" : hostPath type check failed: '
        f"{host} is not a file"
    ) in waiting["message"], waiting
    assert _running(cluster, "wrong") is None

    # a subPath that is a symlink out of the volume: refused, as the kubelet does
    _ok(cluster, pod, "ln -sfn /etc /notes/evil")
    escape = tmp_path / "escape.yaml"
    escape.write_text(ESCAPE)
    cluster.cli("apply", "-f", str(escape))
    waiting = wait_for("the escape pod refused", lambda: _waiting(cluster, "escape"), 60)
    assert waiting["reason"] == "CreateContainerError", waiting
    assert 'volume "notes": subPath "evil" points outside the volume' in waiting["message"]
    assert _running(cluster, "escape") is None
