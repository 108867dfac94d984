"""The stateful example (examples/redis/) as shipped, on real processes, Docker and Redis.

What the demo shows, pinned down: the directory applies as it is; redis-0 comes up with
its claim data-redis-0 bound on its node; a key written with redis-cli is read back after
the container is killed (restarted on the same claim) and after the pod is deleted (a new
pod, same claim; redis-server stops at once on SIGTERM, flushing its append-only file).
The image is built by compose/images/build.sh, as the demo builds it (seconds once built;
a missing debootstrap or mirror is a skip, a failure under CI).
"""

from __future__ import annotations

import time
from typing import Any

import docker
import pytest

from tests.integration.cluster import LocalCluster, wait_for
from tests.support import REPO, build_images, exec_output

pytestmark = [pytest.mark.integration, pytest.mark.timeout(600)]

EXAMPLE = REPO / "examples" / "redis"
IMAGE = "pinnace/redis:latest"


@pytest.fixture(scope="module")
def redis_image() -> str:
    build_images("redis")
    return IMAGE


def _redis_0(cluster: LocalCluster) -> dict[str, Any] | None:
    for p in cluster.pods():
        statuses = p["status"].get("containerStatuses") or [{}]
        if (
            p["metadata"]["name"] == "redis-0"
            and not p["metadata"].get("deletionTimestamp")
            and p["status"].get("phase") == "Running"
            and all(c.get("ready") for c in statuses)
        ):
            return p
    return None


def _container(cluster: LocalCluster, pod: dict[str, Any]) -> Any:
    cid = pod["status"]["containerStatuses"][0]["containerID"].removeprefix("docker://")
    return cluster.docker.containers.get(cid)


def _running(container: Any) -> bool:
    try:
        container.reload()
    except docker.errors.NotFound:
        return False
    return bool(container.attrs["State"]["Running"])


def _exit_codes(cluster: LocalCluster, container_id: str, since: float) -> list[str]:
    """The exit codes of the container's runs that ended after `since` (the engine's `die`
    events: they outlive the container)."""
    events = cluster.docker.events(
        since=int(since),
        until=int(time.time()) + 1,
        filters={"container": container_id, "event": "die"},
        decode=True,
    )
    return [
        str(e["Actor"]["Attributes"].get("exitCode"))
        for e in events
        if e["timeNano"] >= since * 1e9
    ]


def _redis_cli(cluster: LocalCluster, pod: dict[str, Any], *args: str) -> str:
    # it may run twice (get, or a set of the same value): Docker loses a short exec's output
    # now and then (tests.support)
    code, out = exec_output(_container(cluster, pod), ["redis-cli", *args])
    assert code == 0, out
    return out.decode().strip()


def test_the_redis_example_keeps_its_key_across_a_kill_and_a_pod_delete(
    cluster: LocalCluster, redis_image: str
) -> None:
    cluster.start_master("--no-lb")
    node = cluster.start_agent("n1")
    out = cluster.cli("apply", "-f", str(EXAMPLE)).stdout
    assert "statefulset.apps/redis created" in out and "service/redis created" in out

    pod = wait_for("redis-0 ready", lambda: _redis_0(cluster), timeout=90)
    assert pod["spec"]["nodeName"] == node
    assert pod["spec"]["containers"][0]["image"] == redis_image
    claim = cluster.get_json("pvc", "data-redis-0")
    assert claim["status"]["phase"] == "Bound"
    volume = next(
        m["Name"] for m in _container(cluster, pod).attrs["Mounts"] if m["Destination"] == "/data"
    )
    assert cluster.docker.volumes.get(volume).attrs["Labels"]["pinnace.node"] == node
    assert _redis_cli(cluster, pod, "set", "demo-key", "hello") == "OK"

    # The container killed (SIGKILL): restarted on the same claim, the key is there. The
    # first restart may start the same container again (agent/restart_path.py): a later run
    # of it counts as much as a new container.
    first = _container(cluster, pod)
    first_run = first.attrs["State"]["StartedAt"]
    first.kill()

    def restarted(p: dict[str, Any] | None) -> dict[str, Any] | None:
        if p is None:
            return None
        now = _container(cluster, p)
        return p if now.id != first.id or now.attrs["State"]["StartedAt"] != first_run else None

    pod = wait_for(
        "redis-0 ready in a restarted container",
        lambda: restarted(_redis_0(cluster)),
        timeout=60,
    )
    assert _redis_cli(cluster, pod, "get", "demo-key") == "hello"

    # The pod deleted: redis-server stops on SIGTERM within the manifest's 10 s grace and
    # exits 0 (a server that ignored it would be killed by the SIGKILL at 10 s: 137; the
    # exit code says which, however loaded the machine); the new redis-0 has the key.
    uid = pod["metadata"]["uid"]
    second = _container(cluster, pod)
    deleted_at = time.time()
    cluster.cli("delete", "pod", "redis-0")
    wait_for("the old container stopped", lambda: not _running(second), timeout=60, interval=0.1)
    codes = wait_for(
        "the old container's exit code",
        lambda: _exit_codes(cluster, second.id, deleted_at),
        timeout=30,
    )
    assert codes == ["0"], f"redis-server did not end on SIGTERM: exit codes {codes}"
    pod = wait_for(
        "a new redis-0 ready",
        lambda: (lambda p: p if p and p["metadata"]["uid"] != uid else None)(_redis_0(cluster)),
        timeout=90,
    )
    assert _redis_cli(cluster, pod, "get", "demo-key") == "hello"
    assert (
        cluster.get_json("pvc", "data-redis-0")["spec"]["volumeName"]
        == (claim["spec"]["volumeName"])
    )
