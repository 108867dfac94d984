"""Pod volumes and node-local claims on real processes and Docker.

A claim holds its requested size and no more (ENOSPC past it, a neighbour claim
unaffected), reports its use, and goes with its node volume when deleted (reclaim
policy Delete); a new claim no node has the disk for waits Pending with the reason. A
claim's data survives a container kill, an agent restart, a master restart (kill -9) and
a pod delete (the replacement lands on the claim's node); a pod whose claim lives on a dead node
stays Pending and says why instead of starting elsewhere empty; an emptyDir is
shared by its pod's restarts and dies with the pod; a memory emptyDir is a tmpfs of
its sizeLimit that keeps its files across a container kill and an agent restart and
is unmounted after its pod is deleted. Draining the claim's node names the pod and
evicts nothing.
"""

from __future__ import annotations

import shutil
import signal
import subprocess
from pathlib import Path
from typing import Any

import pytest

from kernel.claimfiles import claim_file_bytes
from tests.integration.cluster import LocalCluster, wait_for
from tests.support import exec_output

pytestmark = pytest.mark.integration

# capabilities(7): resizing a mounted ext4 (EXT4_IOC_RESIZE_FS) needs it.
CAP_SYS_RESOURCE = 24

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

# A second claim and its own pod: a neighbour the first claim's filling must not touch.
OTHER = """\
apiVersion: v1
kind: PersistentVolumeClaim
metadata:
  name: other
spec:
  accessModes: [ReadWriteOnce]
  resources:
    requests:
      storage: 32Mi
---
apiVersion: apps/v1
kind: Deployment
metadata:
  name: other
spec:
  replicas: 1
  selector:
    matchLabels: {app: other}
  template:
    metadata:
      labels: {app: other}
    spec:
      containers:
        - name: web
          image: pinnace/httpd:latest
          imagePullPolicy: IfNotPresent
          volumeMounts:
            - {name: other, mountPath: /other}
      volumes:
        - name: other
          persistentVolumeClaim: {claimName: other}
"""


def _running_pod(cluster: LocalCluster, app: str = "keeper") -> dict[str, Any] | None:
    pods = [
        p
        for p in cluster.pods()
        if p["metadata"].get("labels", {}).get("app") == app
        and p["status"].get("phase") == "Running"
        and not p["metadata"].get("deletionTimestamp")
        and p["status"].get("containerStatuses", [{}])[0].get("ready")
    ]
    return pods[0] if len(pods) == 1 else None


def _container(cluster: LocalCluster, pod: dict[str, Any]) -> Any:
    cid = pod["status"]["containerStatuses"][0]["containerID"].removeprefix("docker://")
    return cluster.docker.containers.get(cid)


def _sh(cluster: LocalCluster, pod: dict[str, Any], script: str, code: int = 0) -> str:
    """The script's output (it may run twice: Docker loses a short exec's output now and then,
    tests.support.exec_output)."""
    got, out = exec_output(_container(cluster, pod), ["sh", "-c", script])
    assert got == code, out
    return out.decode()


def _run(cluster: LocalCluster, pod: dict[str, Any], script: str) -> None:
    """A script that must run once and succeed; its output is not needed."""
    got, out = _container(cluster, pod).exec_run(["sh", "-c", script])
    assert got == 0, out


def _claim_row(cluster: LocalCluster, name: str) -> list[str]:
    table = cluster.cli("get", "pvc", "-o", "wide").stdout.splitlines()
    return next(line.split() for line in table if line.startswith(f"{name} "))


def _grown_while_running(cluster: LocalCluster, pod: dict[str, Any], agent_pid: int) -> None:
    """A claim grown under its running pod: the agent grows the claim's file at once; the
    filesystem grows in place when the agent may resize a mounted ext4 (CAP_SYS_RESOURCE),
    and the running container sees the new size; where it may not, the claim says
    FileSystemResizePending and the pod runs on untouched, its data and room as they were.
    Either way the container is the same one, not restarted."""
    volume = cluster.get_json("pvc", "other")["spec"]["volumeName"]
    image = cluster.claim_root / pod["spec"]["nodeName"] / f"pinnace-{volume}.img"
    wait_for(
        "the claim's file grown under its running pod",
        lambda: image.stat().st_size >= claim_file_bytes(48 << 20),
        timeout=30,
    )
    caps = int(next(
        line.split()[1]
        for line in Path(f"/proc/{agent_pid}/status").read_text().splitlines()
        if line.startswith("CapEff:")
    ), 16)  # fmt: skip
    online = bool(caps & (1 << CAP_SYS_RESOURCE))

    def size_kib() -> int:
        return int(_sh(cluster, pod, "df -k /other | tail -1").split()[1])

    def pending() -> bool:
        claim = cluster.get_json("pvc", "other")
        types = [c["type"] for c in claim["status"].get("conditions", [])]
        return "FileSystemResizePending" in types

    if online:
        wait_for("the running pod's filesystem grown", lambda: size_kib() >= 48 * 1024, 30)
        wait_for("the resize no longer pending", lambda: not pending(), 30)
    else:
        assert size_kib() < 40 * 1024  # still the 32Mi filesystem
        assert pending()
    assert _sh(cluster, pod, "cat /other/kept") == "before\n"
    _run(cluster, pod, "echo more >> /other/kept")
    now = _running_pod(cluster, "other")
    assert now is not None
    assert now["metadata"]["name"] == pod["metadata"]["name"]
    (status,) = now["status"]["containerStatuses"]
    assert (status["containerID"], status["restartCount"]) == (
        pod["status"]["containerStatuses"][0]["containerID"], 0
    )  # fmt: skip


def _sizes_enforced_and_delete_reclaims(
    cluster: LocalCluster, pod: dict[str, Any], tmp_path: Path, agent_pid: int
) -> None:
    """Writing past the claim's size fails with ENOSPC, a neighbour claim is unaffected,
    the use shows in `get pvc -o wide`, a claim grows (never shrinks), and deleting a
    claim (reclaim policy Delete) removes its PersistentVolume, Docker volume, file and
    loop device."""
    other = wait_for("the other pod running", lambda: _running_pod(cluster, "other"), 60)
    full = _sh(cluster, pod, "dd if=/dev/zero of=/data/big bs=1M count=80 2>&1", code=1)
    assert "No space left on device" in full
    assert _sh(cluster, other, "dd if=/dev/zero of=/other/f bs=1M count=8 2>&1 && echo ok")
    used = wait_for(
        "the claim's use reported",
        lambda: (lambda row: row[-1] if row[-1].startswith(("6", "7")) else None)(
            _claim_row(cluster, "data")
        ),
        timeout=30,
    )
    assert used.endswith("/65Mi") or used.endswith("/66Mi"), used
    claims = {c["metadata"]["name"]: c for c in cluster.get_json("pvc")["items"]}
    assert int(claims["data"]["metadata"]["annotations"]["pinnace.io/used-bytes"]) > 60 << 20
    _run(cluster, pod, "rm /data/big")

    # The other claim grows 32Mi -> 48Mi while its pod runs: online where the kernel lets
    # the agent, else (this machine's sandbox drops CAP_SYS_RESOURCE) once no container
    # holds it.
    _sh(cluster, other, "echo before > /other/kept")
    grown = tmp_path / "grown.yaml"
    grown.write_text(OTHER.replace("storage: 32Mi", "storage: 48Mi"))
    cluster.cli("apply", "-f", str(grown))
    shrink = cluster.cli("apply", "-f", str(grown.with_name("app.yaml")), check=False)
    assert "cannot shrink from 48Mi to 32Mi" in shrink.stderr
    _grown_while_running(cluster, other, agent_pid)
    cluster.cli("scale", "deployment", "other", "--replicas", "0")
    wait_for(
        "the other pod gone",
        lambda: not any("other" in p["metadata"]["name"] for p in cluster.pods()),
        60,
    )
    cluster.cli("scale", "deployment", "other", "--replicas", "1")
    other = wait_for("the other pod back", lambda: _running_pod(cluster, "other"), 60)
    size_kib = int(_sh(cluster, other, "df -k /other | tail -1").split()[1])
    assert size_kib >= 48 * 1024, size_kib
    assert _sh(cluster, other, "dd if=/dev/zero of=/other/g bs=1M count=40 2>&1 && echo ok")

    # storage class local: reclaim policy Delete
    volume = claims["other"]["spec"]["volumeName"]
    node = pod["spec"]["nodeName"]
    image = cluster.claim_root / node / f"pinnace-{volume}.img"
    assert image.exists()
    cluster.cli("delete", "deployment", "other")
    wait_for(
        "the other claim deleted",
        lambda: cluster.cli("delete", "pvc", "other", check=False).returncode == 0,
        timeout=30,
    )
    wait_for(
        "its volume gone from the node and the cluster",
        lambda: (
            not cluster.docker.volumes.list(filters={"name": f"pinnace-{volume}"})
            and not image.exists()
            and volume not in cluster.cli("get", "pv").stdout
        ),
        timeout=30,
    )
    loops = subprocess.run(["losetup", "-j", str(image)], capture_output=True, text=True)
    assert loops.stdout == ""


HUGE = """\
apiVersion: v1
kind: PersistentVolumeClaim
metadata:
  name: huge
spec:
  accessModes: [ReadWriteOnce]
  resources:
    requests:
      storage: {size}
---
apiVersion: apps/v1
kind: Deployment
metadata:
  name: huge
spec:
  replicas: 1
  selector:
    matchLabels: {{app: huge}}
  template:
    metadata:
      labels: {{app: huge}}
    spec:
      containers:
        - name: web
          image: pinnace/httpd:latest
          imagePullPolicy: IfNotPresent
          volumeMounts:
            - {{name: huge, mountPath: /huge}}
      volumes:
        - name: huge
          persistentVolumeClaim: {{claimName: huge}}
"""


def _a_claim_larger_than_the_disk_waits_with_the_reason(
    cluster: LocalCluster, tmp_path: Path
) -> None:
    """A new claim no node's claim disk has room for leaves its pod Pending with
    kubectl's words and the claim's name (the scheduler counts the free bytes the agent
    reports), instead of failing the container with fallocate's ENOSPC; the claim stays
    unbound. Applied right after a master restart: until the node has reported, the
    scheduler waits rather than placing it blind."""
    disk = cluster.claim_root
    while not disk.exists():
        disk = disk.parent
    gib = shutil.disk_usage(disk).free * 2 // (1 << 30) + 1
    manifest = tmp_path / "huge.yaml"
    manifest.write_text(HUGE.format(size=f"{gib}Gi"))
    cluster.cli("apply", "-f", str(manifest))

    def pending_message() -> str | None:
        pods = [p for p in cluster.pods() if p["metadata"].get("labels", {}).get("app") == "huge"]
        message = pods[0]["status"].get("message", "") if pods else ""
        assert not (pods and pods[0]["spec"].get("nodeName")), "placed without the room"
        return str(message) if "enough free storage" in message else None

    message = wait_for("the huge claim's pod pending", pending_message, timeout=30)
    assert message == (
        "0/1 nodes are available: 1 node(s) did not have enough free storage. "
        f'Claims to bind: persistentvolumeclaim "huge" ({gib}Gi).'
    )
    assert cluster.get_json("pvc", "huge")["status"]["phase"] == "Pending"
    cluster.cli("delete", "deployment", "huge")
    cluster.cli("delete", "pvc", "huge")


def _wait_pod(cluster: LocalCluster, other_than: str = "") -> dict[str, Any]:
    return wait_for(
        "one running pod",
        lambda: (lambda p: p if p and p["metadata"]["name"] != other_than else None)(
            _running_pod(cluster)
        ),
        timeout=60,
    )


# Eleven steps, each waiting on real processes: 300 s (the suite's hang guard) ran out at load
# 30-34 while the test was still moving (its replacement pod Running 6 s before the cut).
@pytest.mark.timeout(600)
def test_claim_data_survives_kill_delete_and_agent_restart_and_waits_for_its_node(
    cluster: LocalCluster, tmp_path: Path
) -> None:
    cluster.start_master("--no-lb")
    n1 = cluster.start_agent("n1")
    manifest = tmp_path / "app.yaml"
    manifest.write_text(APP + "---\n" + OTHER)
    cluster.cli("apply", "-f", str(manifest))
    pod = _wait_pod(cluster)
    assert pod["spec"]["nodeName"] == n1
    _sizes_enforced_and_delete_reclaims(cluster, pod, tmp_path, cluster.agents[n1].pid)

    pvc = cluster.get_json("pvc", "data")
    assert pvc["status"]["phase"] == "Bound"
    volume = pvc["spec"]["volumeName"]
    assert cluster.get_json("pv", volume)["spec"]["claimRef"]["name"] == "data"
    assert "Bound" in cluster.cli("get", "pvc").stdout
    _sh(cluster, pod, "echo kept > /data/k; echo scratch > /scratch/s; echo fast > /fast/f")
    mounts = _sh(cluster, pod, "cat /proc/mounts")
    assert any(" /fast tmpfs " in line for line in mounts.splitlines()), mounts
    # emptyDirs writable by any user, as the kubelet makes them (images running as
    # another user write to them); a claim keeps its filesystem's own root
    assert _sh(cluster, pod, "stat -c %a /scratch /fast") == "777\n777\n"
    # the memory emptyDir is the agent's own tmpfs of its sizeLimit
    assert _sh(cluster, pod, "df -k /fast | tail -1").split()[1] == "8192"
    full = _sh(cluster, pod, "dd if=/dev/zero of=/fast/big bs=1M count=9 2>&1", code=1)
    assert "No space left on device" in full
    _run(cluster, pod, "rm /fast/big")

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
    assert _sh(cluster, pod, "cat /data/k /scratch/s /fast/f") == "kept\nscratch\nfast\n"

    # agent restarted -> the same containers are adopted, the data is still there
    cluster.kill(cluster.agents[n1], signal.SIGTERM)
    cluster.start_agent("n1")
    pod = _wait_pod(cluster)
    assert _sh(cluster, pod, "cat /data/k /fast/f") == "kept\nfast\n"

    # master killed (-9) and started again on its data dir: the pod keeps its claim and
    # its data; the replacement below is placed by the restarted master
    port = cluster.master_address.rsplit(":", 1)[1]
    before = pod["metadata"]["name"]
    cluster.kill_master()
    cluster.start_master("--no-lb", port=int(port))
    _a_claim_larger_than_the_disk_waits_with_the_reason(cluster, tmp_path)
    pod = _wait_pod(cluster)
    assert pod["metadata"]["name"] == before and pod["spec"]["nodeName"] == n1
    assert cluster.get_json("pvc", "data")["spec"]["volumeName"] == volume
    assert _sh(cluster, pod, "cat /data/k") == "kept\n"

    # drain of the claim's node: the pod is named with its claim and not evicted into an
    # empty volume elsewhere; the node stays cordoned until uncordoned (as kubectl drain)
    drained = cluster.cli("drain", n1, check=False)
    assert drained.returncode == 1, drained.stdout
    assert f"{pod['metadata']['name']}: its claim data keeps its data on this node" in (
        drained.stderr
    ), drained.stderr
    assert "evicting pod" not in drained.stdout
    assert not pod["metadata"].get("deletionTimestamp")
    still = _running_pod(cluster)
    assert still is not None and still["metadata"]["name"] == pod["metadata"]["name"]
    cluster.cli("uncordon", n1)

    # pod deleted -> its replacement has the claim's data and a fresh emptyDir
    old = pod["metadata"]["name"]
    cluster.cli("delete", "pod", old)
    pod = _wait_pod(cluster, other_than=old)
    assert _sh(cluster, pod, "cat /data/k; ls /scratch | wc -l; ls /fast | wc -l") == "kept\n0\n0\n"
    old_scratch = f"pinnace-{n1}-{old}-scratch"
    old_fast = cluster.memory_root / n1 / f"pinnace-{n1}-{old}-fast"
    wait_for(
        "the deleted pod's emptyDir volumes removed, its tmpfs unmounted",
        lambda: (
            not cluster.docker.volumes.list(filters={"name": old_scratch})
            and not old_fast.exists()
            and str(old_fast) not in Path("/proc/mounts").read_text()
        ),
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
    classes = cluster.cli("get", "sc").stdout.splitlines()
    assert classes[0].split() == [
        *("NAME", "PROVISIONER", "RECLAIMPOLICY", "VOLUMEBINDINGMODE", "ALLOWVOLUMEEXPANSION"),
        "AGE",
    ]
    assert classes[1].startswith("local (default) ") and " Delete " in classes[1]
