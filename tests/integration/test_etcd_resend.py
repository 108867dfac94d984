"""A pod status reported while a single etcd master could not store it is not lost.

A real etcd, a real master (no --leader-elect) reaching it through the relay of
etcd_trap.py, a real agent running a real container. The relay holds one write's
answer back ("lose": the write never reaches etcd), so for the master's etcd timeout
that write is in flight: the flush lock is held and nothing the master applies to
memory meanwhile is stored. In that window the pod's container is killed: the agent
restarts it and reports restart count 1, which the master's memory shows (so the
report was applied before the pause, not after it). Then the write's outcome is
unknown, the master pauses, the relay is cut, and the master settles and reloads its
memory from etcd: the store is the truth, and the report is gone from it. The agent
counts it as sent and says a pod's report again only when it changes; before the
master asked agents to resend after a reload, the pod showed restart count 0 for good.
"""

from __future__ import annotations

import datetime
import uuid
from collections.abc import Iterator
from pathlib import Path

import docker
import pytest

from master.model import Pod
from tests.etcd_cluster import EtcdCluster
from tests.integration import etcd_doubt_kit
from tests.integration.cluster import wait_for
from tests.integration.etcd_doubt_kit import (
    end,
    joined_agent,
    pods,
    restarts,
    stored,
    takes_writes,
    trapped_write,
)
from tests.integration.etcd_trap import EtcdTrap
from tests.integration.masters import DEPLOYMENT, Masters
from tests.support import app_containers

# One etcd member and the relay in front of it (etcd_doubt_kit.py).
etcd = etcd_doubt_kit.etcd
trap = etcd_doubt_kit.trap

# The trapped write's window: long enough for a container's restart to be reported.
ETCD_TIMEOUT_S = 15
# Resuming: the trapped connection's calls time out, the next connects and settles.
RESUME_S = 60.0
# After writes resume, the restart must be in the master's view within this.
RESENT_S = 20.0


@pytest.fixture
def masters(tmp_path: Path, trap: EtcdTrap) -> Iterator[Masters]:
    extra = ("--etcd-prefix", "/resend/", "--etcd-timeout", f"{ETCD_TIMEOUT_S}s")
    m = Masters(tmp_path, trap.url, extra)
    try:
        yield m
    finally:
        m.stop_all()


@pytest.fixture
def agent(
    masters: Masters, tmp_path: Path, docker_client: docker.DockerClient
) -> Iterator[tuple[str, str]]:
    """(master address, node name): the master started, an agent joined to it."""
    address = masters.start("solo")
    node = f"resend-{uuid.uuid4().hex[:6]}"
    with joined_agent(masters, address, address, node, tmp_path, docker_client):
        yield address, node


def _in_etcd(etcd: EtcdCluster, name: str) -> Pod:
    """The pod as etcd holds it, read past the relay."""
    found = stored(etcd, "Pod", f"/resend/o/Pod/default/{name}")
    assert isinstance(found, Pod)
    return found


def test_a_status_reported_before_a_reload_reaches_the_masters_view_after_it(
    masters: Masters,
    agent: tuple[str, str],
    trap: EtcdTrap,
    etcd: EtcdCluster,
    docker_client: docker.DockerClient,
    tmp_path: Path,
) -> None:
    address, _ = agent
    applied = masters.cli(
        address, "apply", "-f", "-", stdin=DEPLOYMENT.format(name="web", replicas=1)
    )
    assert applied.returncode == 0, applied.stderr

    def running() -> str:
        shown = pods(masters, address)
        ok = len(shown) == 1 and restarts(shown[0]) == ("Running", True, 0)
        return str(shown[0]["metadata"]["name"]) if ok else ""

    pod = wait_for("the pod running", running, 120)
    wait_for("the pod stored as running", lambda: _in_etcd(etcd, pod).status.ready, 30)
    [container] = app_containers(docker_client, f"pinnace.pod={pod}")

    trapped = trapped_write(masters, address, trap, tmp_path)
    try:
        container.kill()

        def restarted() -> bool:
            [shown] = pods(masters, address)
            return restarts(shown) == ("Running", True, 1)

        wait_for("the restart in the master's memory", restarted, ETCD_TIMEOUT_S)
        # Reported while the write was still in flight: before the pause and its reload.
        in_flight = trapped.poll() is None
        _, err = trapped.communicate(timeout=ETCD_TIMEOUT_S + 30)
    finally:
        end(trapped)
    assert in_flight, "the write's outcome was known before the restart was reported"
    assert trapped.returncode == 1
    assert "may or may not have been saved" in err, err
    wait_for("the master paused", lambda: "writes and controllers pause" in masters.log("solo"), 10)

    trap.cut()
    wait_for("the master takes writes again", takes_writes(masters, address), RESUME_S)
    log = masters.log("solo")
    assert "writes resume" in log, log[-2000:]

    wait_for("the restart in the master's view after the reload", restarted, RESENT_S)
    wait_for(
        "the restart in etcd",
        lambda: [c.restart_count for c in _in_etcd(etcd, pod).status.container_statuses] == [1],
        RESENT_S,
    )
    assert "asking 1 agents for their reports" in masters.log("solo")
    resumed = _logged_at(masters.log("solo"), "writes resume")
    asked = _logged_at((tmp_path / "agent.log").read_text(), "asks for every report again")
    print(f"the agent was asked for its reports {asked - resumed:.3f}s after writes resumed")


def _logged_at(log: str, text: str) -> float:
    """The time of the last log line holding `text` (the logs' "%Y-%m-%d %H:%M:%S,ms")."""
    [*_, line] = [line for line in log.splitlines() if text in line]
    stamp = datetime.datetime.strptime(line[:23], "%Y-%m-%d %H:%M:%S,%f")
    return stamp.timestamp()
