"""With several masters (--leader-elect), a pod status the leader applied but never stored is
not lost: not when the leader reloads its memory on resuming, nor when another takes over.

A real etcd, three real masters, a real agent knowing all three, a real container. The
leader (m1) reaches etcd through the relay of etcd_trap.py, the followers directly, so the
relay can hold the leader's writes alone. Leases are long (LEASE_S) so that the leader's
renewals, held with its trapped connection, do not let its lease run out while the test
holds it: the followers take over only when the test says so.

1. The leader resumes. The relay loses one write ("lose"): for the etcd timeout it is in
   flight and nothing the leader applies meanwhile is stored. The pod's container is
   killed; the agent restarts it and reports restart count 1, which the leader's memory
   shows. The write's outcome is unknown, the leader pauses (its memory is reloaded from
   etcd: the report is gone), the relay is cut, its lease is renewed and it resumes,
   reloading again. The agent's session with it never ended, and the agent says a report
   again only when it changes: before the leader asked its agents to resend after a reload,
   the pod showed restart count 0 for good (this phase fails with the resend turned off).
2. Another master takes over. Writes held again, the container killed again, restart count
   2 in the old leader's memory and not in etcd, the old leader killed with -9 and its lease
   revoked (what etcd does when it runs out, without waiting the long lease). The agent
   registers with the new leader and its registration carries every pod's status, so the
   new leader shows restart count 2 (this phase holds without the resend too: a new session
   always starts with the whole set).
"""

from __future__ import annotations

import contextlib
import json
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import docker
import pytest

from master.ha.elector import MasterInfo
from master.model import Pod
from master.store.etcd_client import EtcdClient, EtcdSettings
from master.store.etcd_lease import EtcdLeases
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
ETCD_TIMEOUT_S = 10
# The leader acts until 3/4 of a lease after its last confirmed renewal, sent up to a
# quarter of a lease before the trap: 40 s leaves it 20 s after the trap springs, twice
# the write's window, before it must stop (and etcd's copy of the lease lives 10 s longer).
LEASE_S = 40
# The paused leader settles, renews and resumes once the relay is cut.
RESUME_S = 60.0
# After writes resume, the restart must be in the leader's view within this.
RESENT_S = 20.0


@dataclass
class Ha:
    masters: Masters
    prefix: str
    etcd: EtcdCluster

    def leader(self) -> str:
        """The leading master's name ("" when none leads)."""
        client = EtcdClient(EtcdSettings((self.etcd.members[0].client_url,)))
        try:
            held = EtcdLeases(client).held(f"{self.prefix}leader".encode())
        finally:
            client.close()
        info = MasterInfo.decode(held.value) if held.create_revision else None
        return info.name if info is not None else ""

    def revoke_leader_lease(self) -> None:
        """Ends the leader key's lease now, as etcd does when it runs out."""
        client = EtcdClient(EtcdSettings((self.etcd.members[0].client_url,)))
        try:
            leases = EtcdLeases(client)
            held = leases.held(f"{self.prefix}leader".encode())
            if held.lease:
                leases.revoke(held.lease)
        finally:
            client.close()

    def stored_pod(self, name: str) -> Pod:
        found = stored(self.etcd, "Pod", f"{self.prefix}o/Pod/default/{name}")
        assert isinstance(found, Pod)
        return found


@contextlib.contextmanager
def _masters(
    workdir: Path, trap: EtcdTrap, etcd: EtcdCluster, lease_s: int, timeout_s: int
) -> Iterator[Ha]:
    """m1 leading through the relay, m2 and m3 following on etcd directly."""
    prefix = f"/resendha-{uuid.uuid4().hex[:6]}/"
    extra = (
        "--leader-elect", "--leader-lease", str(lease_s), "--etcd-prefix", prefix,
        "--etcd-timeout", f"{timeout_s}s",
    )  # fmt: skip
    masters = Masters(workdir, trap.url, extra)
    cluster = Ha(masters, prefix, etcd)
    try:
        masters.start("m1", "--name", "m1")
        wait_for("m1 to lead", lambda: cluster.leader() == "m1")
        direct = etcd.members[0].client_url
        masters.start_many(("m2", "m3"), "--etcd-endpoints", direct)
        yield cluster
    finally:
        masters.stop_all()


@pytest.fixture
def ha(tmp_path: Path, trap: EtcdTrap, etcd: EtcdCluster) -> Iterator[Ha]:
    with _masters(tmp_path, trap, etcd, LEASE_S, ETCD_TIMEOUT_S) as cluster:
        yield cluster


@pytest.fixture
def ha_short(tmp_path: Path, trap: EtcdTrap, etcd: EtcdCluster) -> Iterator[Ha]:
    """Leases of 3 s (tests/integration/test_leader_election.py's), a 2 s etcd timeout:
    m1 cut off from etcd loses the lead within seconds."""
    with _masters(tmp_path, trap, etcd, 3, 2) as cluster:
        yield cluster


def test_a_status_the_leader_never_stored_reaches_the_leaders_view_after_a_reload(
    ha: Ha,
    trap: EtcdTrap,
    docker_client: docker.DockerClient,
    tmp_path: Path,
) -> None:
    masters = ha.masters
    leader = masters.addresses["m1"]
    everyone = ",".join(masters.addresses[n] for n in ("m1", "m2", "m3"))
    node = f"resendha-{uuid.uuid4().hex[:6]}"
    with joined_agent(masters, leader, everyone, node, tmp_path, docker_client):
        applied = masters.cli(
            leader, "apply", "-f", "-", stdin=DEPLOYMENT.format(name="web", replicas=1)
        )
        assert applied.returncode == 0, applied.stderr

        def shows(address: str, count: int) -> bool:
            [pod] = pods(masters, address)
            return restarts(pod) == ("Running", True, count)

        def running() -> str:
            shown = pods(masters, leader)
            ok = len(shown) == 1 and restarts(shown[0]) == ("Running", True, 0)
            return str(shown[0]["metadata"]["name"]) if ok else ""

        pod = wait_for("the pod running", running, 120)
        wait_for("the pod stored as running", lambda: ha.stored_pod(pod).status.ready, 30)
        [container] = app_containers(docker_client, f"pinnace.pod={pod}")

        # 1. The leader pauses and resumes; the agent's session with it lasts throughout.
        trapped = trapped_write(masters, leader, trap, tmp_path)
        try:
            container.kill()
            wait_for("restart 1 in the leader's memory", lambda: shows(leader, 1), ETCD_TIMEOUT_S)
            # Reported while the write was in flight: before the pause and its reload.
            in_flight = trapped.poll() is None
            _, err = trapped.communicate(timeout=ETCD_TIMEOUT_S + 30)
        finally:
            end(trapped)
        assert in_flight, "the write's outcome was known before the restart was reported"
        assert "may or may not have been saved" in err, err
        trap.cut()
        wait_for("the leader pauses", lambda: "m1 pauses" in masters.log("m1"), 20)
        wait_for("the leader takes writes again", takes_writes(masters, leader), RESUME_S)
        assert "m1 resumes" in masters.log("m1"), masters.log("m1")[-3000:]
        assert ha.leader() == "m1"
        wait_for(
            "restart 1 in the leader's view after its reload", lambda: shows(leader, 1), RESENT_S
        )
        wait_for(
            "restart 1 in etcd",
            lambda: [c.restart_count for c in ha.stored_pod(pod).status.container_statuses] == [1],
            RESENT_S,
        )
        assert "asking 1 agents for their reports" in masters.log("m1")
        agent_log = (tmp_path / "agent.log").read_text()
        assert agent_log.count(f"registered node {node}") == 1, "the agent's session ended"

        # 2. Another master takes over from a leader that never stored restart 2.
        trapped = trapped_write(masters, leader, trap, tmp_path)
        try:
            [container] = app_containers(docker_client, f"pinnace.pod={pod}")
            container.kill()
            wait_for("restart 2 in the leader's memory", lambda: shows(leader, 2), ETCD_TIMEOUT_S)
            masters.kill("m1")
        finally:
            end(trapped)
        stored_then = [c.restart_count for c in ha.stored_pod(pod).status.container_statuses]
        assert stored_then == [1], "restart 2 reached etcd: the takeover would not need it"
        ha.revoke_leader_lease()
        new = wait_for("another leader", lambda: ha.leader() if ha.leader() != "m1" else "", 30)
        address = masters.addresses[new]
        wait_for("restart 2 in the new leader's view", lambda: shows(address, 2), 60)
        wait_for(
            "restart 2 in etcd",
            lambda: [c.restart_count for c in ha.stored_pod(pod).status.container_statuses] == [2],
            RESENT_S,
        )


@pytest.mark.parametrize("reconnects", [True, False], ids=["deposed", "cut-off"])
def test_a_leader_deposed_alive_hands_its_agents_to_the_new_leader(
    reconnects: bool,
    ha_short: Ha,
    trap: EtcdTrap,
    docker_client: docker.DockerClient,
    tmp_path: Path,
) -> None:
    """m1 cut off from etcd (the relay loses its connection) pauses, loses its lease and,
    once it reaches etcd again, follows. It kept its agents' sessions and acknowledged their
    heartbeats: the new leader never heard the agent and showed the node Ready Unknown for
    as long as one looked (40 s), on its way to evicting its pods. A master that follows
    ends its sessions: the agent registers with the new leader, the node stays Ready and
    its pod Running, on the same container.

    Cut off for good (`reconnects` False), m1 stays paused: only etcd could tell it that its
    lease expired. It kept its agents as long as it was cut off; a pause past two leases
    without a confirmed renewal (Leadership.lapsed) is no longer settling, and it ends
    their sessions as a follower does."""
    ha = ha_short
    masters = ha.masters
    leader = masters.addresses["m1"]
    everyone = ",".join(masters.addresses[n] for n in ("m1", "m2", "m3"))
    node = f"deposed-{uuid.uuid4().hex[:6]}"
    with joined_agent(masters, leader, everyone, node, tmp_path, docker_client):
        applied = masters.cli(
            leader, "apply", "-f", "-", stdin=DEPLOYMENT.format(name="web", replicas=1)
        )
        assert applied.returncode == 0, applied.stderr
        wait_for(
            "the pod running",
            lambda: [restarts(p) for p in pods(masters, leader)] == [("Running", True, 0)],
            120,
        )
        [container] = app_containers(docker_client, f"pinnace.node={node}")
        trapped = trapped_write(masters, leader, trap, tmp_path)
        try:
            new = wait_for("another leader", lambda: ha.leader() if ha.leader() != "m1" else "", 30)
        finally:
            end(trapped)
        if reconnects:
            trap.cut()
            wait_for("m1 follows", lambda: "m1 stops leading" in masters.log("m1"), 30)
        address = masters.addresses[new]
        agent_log = tmp_path / "agent.log"
        wait_for(
            "the agent to register with the new leader",
            lambda: agent_log.read_text().count(f"registered node {node}") >= 2,
            30,
        )
        assert "this master does not lead" in masters.log("m1")

        def ready() -> bool:
            got = masters.cli(address, "get", "nodes", "-o", "json")
            [shown] = json.loads(got.stdout)["items"]
            conditions = shown["status"]["conditions"]
            return [c["status"] for c in conditions if c["type"] == "Ready"] == ["True"]

        wait_for("the node Ready on the new leader", ready, 30)
        assert [restarts(p) for p in pods(masters, address)] == [("Running", True, 0)]
        [now] = app_containers(docker_client, f"pinnace.node={node}")
        assert now.id == container.id
