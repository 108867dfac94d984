"""Three masters with --leader-elect on a real three-member etcd cluster.

What users rely on: exactly one master leads and the others mirror it (reads
anywhere; writes to any master, a follower forwarding them to the leader, over
gRPC and the Kubernetes API); all masters run on TLS with one cluster identity;
the leader killed with -9 is replaced and writes go on, with every
acknowledged write still there; an etcd member lost is invisible; etcd without
quorum refuses writes with a clear error while reads go on, and everything
recovers when quorum is back.
"""

from __future__ import annotations

import json
import signal
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from subprocess import CompletedProcess
from typing import Any

import grpc
import pytest
import yaml

from master.ha.elector import MasterInfo
from master.pki.clientconfig import read_client_config
from master.store.etcd import EtcdStore
from master.store.etcd_client import EtcdSettings
from master.store.etcd_lease import EtcdLeases
from protos import cluster_pb2, cluster_pb2_grpc
from tests.etcd_cluster import EtcdCluster
from tests.integration.cluster import wait_for
from tests.integration.masters import DEPLOYMENT, Masters

NAMES = ("m0", "m1", "m2")
SECRET = """\
apiVersion: v1
kind: Secret
metadata: {name: db}
data: {password: aHVudGVyMg==}
"""


@dataclass
class HaCluster:
    etcd: EtcdCluster
    masters: Masters
    prefix: str
    store: EtcdStore = field(init=False)

    def __post_init__(self) -> None:
        self.store = EtcdStore(
            EtcdSettings(tuple(self.etcd.endpoints.split(",")), prefix=self.prefix)
        )

    def leader(self) -> MasterInfo | None:
        held = EtcdLeases(self.store.client).held(self.store.prefix + b"leader")
        return MasterInfo.decode(held.value) if held.create_revision else None

    def wait_leader(self, other_than: str = "", timeout: float = 30) -> MasterInfo:
        def found() -> MasterInfo | None:
            leader = self.leader()
            return leader if leader is not None and leader.name != other_than else None

        return wait_for("a leader", found, timeout=timeout, interval=0.05)

    def heal(self) -> None:
        """Bring back what an earlier test of the module killed: etcd members, masters."""
        dead = [m for m in self.etcd.members if m.process is None or m.process.poll() is not None]
        for member in dead:
            self.etcd.start_member(member)
        if dead:
            self.etcd.wait_healthy(timeout=30)
        for name in NAMES:
            proc = self.masters.procs.get(name)
            if proc is None or proc.poll() is not None:
                self.masters.start(name, "--name", name)
        self.wait_leader()


def start_ha(workdir: Path, lb_port_offset: int | None = None) -> HaCluster:
    etcd = EtcdCluster.start(members=3)
    prefix = f"/t-{uuid.uuid4().hex[:8]}/"
    masters = Masters(
        workdir,
        etcd.endpoints,
        # A write without etcd quorum is refused after 2 s rather than 5 (the quorum test).
        # A 3 s lease, not the 1 s default: at load 25-40 on two cores a master or etcd went
        # unscheduled past the 0.75 s slack a 1 s lease leaves, and the lead changed every
        # few seconds with no fault at all (4 of this module's 6 tests failed, 1 with 3 s).
        # What these tests check holds for any lease; how fast failover is, tests.bench.ha
        # measures with the default.
        ("--leader-elect", "--leader-lease", "3", "--etcd-prefix", prefix, "--etcd-timeout", "2s"),
        lb_port_offset=lb_port_offset,
    )
    try:
        masters.start_many(NAMES)
        return HaCluster(etcd, masters, prefix)
    except BaseException:
        masters.stop_all()
        etcd.stop()
        raise


def stop_ha(cluster: HaCluster) -> None:
    cluster.masters.stop_all()
    cluster.store.close()
    cluster.etcd.stop()


@pytest.fixture(scope="module")
def ha_module(tmp_path_factory: pytest.TempPathFactory) -> Iterator[HaCluster]:
    """One etcd cluster and three masters for the whole module (starting them is most of
    the cost): each test heals what the one before it killed."""
    cluster = start_ha(tmp_path_factory.mktemp("ha"))
    try:
        yield cluster
    finally:
        stop_ha(cluster)


@pytest.fixture
def ha(ha_module: HaCluster) -> HaCluster:
    ha_module.heal()
    return ha_module


def apply(masters: Masters, address: str, name: str, replicas: int = 0, timeout: float = 5) -> None:
    with masters.channel(address) as channel:
        stub = cluster_pb2_grpc.ClusterServiceStub(channel)
        content = DEPLOYMENT.format(name=name, replicas=replicas).encode()
        stub.ApplyManifests(
            cluster_pb2.ApplyManifestsRequest(
                files=[cluster_pb2.SourceFile(name="<test>", content=content)]
            ),
            timeout=timeout,
        )


def deployments(masters: Masters, address: str) -> dict[str, int]:
    with masters.channel(address) as channel:
        stub = cluster_pb2_grpc.ClusterServiceStub(channel)
        reply = stub.GetObjects(cluster_pb2.GetObjectsRequest(kind="Deployment"), timeout=10)
    docs = [json.loads(o.json) for o in reply.objects]
    return {d["metadata"]["name"]: d["spec"]["replicas"] for d in docs}


def test_writes_to_any_master_reach_the_leader_and_every_master_mirrors_them(
    ha: HaCluster,
) -> None:
    leader = ha.wait_leader()
    followers = [n for n in NAMES if n != leader.name]

    # gRPC: the CLI talks to a follower only; the follower forwards to the leader.
    applied = ha.masters.cli(
        ha.masters.addresses[followers[0]],
        "apply", "-f", "-", stdin=DEPLOYMENT.format(name="web", replicas=2),
    )  # fmt: skip
    scaled = ha.masters.cli(
        ha.masters.addresses[followers[1]], "scale", "deployment", "web", "--replicas", "0"
    )
    # The Kubernetes API of a follower takes writes too (kubectl, client libraries).
    status, created = ha.masters.kube(
        followers[1],
        "POST",
        "/apis/apps/v1/namespaces/default/deployments",
        yaml.safe_load(DEPLOYMENT.format(name="kube", replicas=0)),
    )

    assert applied.returncode == 0, applied.stderr
    assert scaled.returncode == 0, scaled.stderr
    assert status == 201, created
    assert created["metadata"]["name"] == "kube"
    for name in NAMES:
        address = ha.masters.addresses[name]

        def mirrored(a: str = address) -> bool:
            return {"web": 0, "kube": 0}.items() <= deployments(ha.masters, a).items()

        wait_for(f"{name} to hold both writes", mirrored)


def test_get_masters_lists_every_master_and_the_leader_from_any_of_them(ha: HaCluster) -> None:
    def listings() -> tuple[MasterInfo, CompletedProcess[str], CompletedProcess[str]] | None:
        leader = ha.wait_leader()
        follower = ha.masters.addresses[next(n for n in NAMES if n != leader.name)]
        listed = ha.masters.cli(follower, "get", "masters", "-o", "json")
        table = ha.masters.cli(follower, "get", "masters")
        # On a machine loaded enough for a CLI call to take seconds, the leader may have
        # changed between the two: list again under one leader.
        return (leader, listed, table) if ha.leader() == leader else None

    leader, listed, table = wait_for("two listings under one leader", listings, timeout=90)
    follower = next(n for n in NAMES if n != leader.name)

    assert listed.returncode == 0, listed.stderr
    items = json.loads(listed.stdout)["items"]
    assert [i["metadata"]["name"] for i in items] == list(NAMES)
    assert [i["spec"]["address"] for i in items] == [ha.masters.addresses[n] for n in NAMES]
    assert [i["status"]["leader"] for i in items] == [n == leader.name for n in NAMES]
    lines = table.stdout.splitlines()
    assert lines[0].split() == ["NAME", "ADDRESS", "ROLE", "AGE"]
    assert [line.split()[:3] for line in lines[1:]] == [
        [n, ha.masters.addresses[n], "leader" if n == leader.name else "follower"] for n in NAMES
    ]

    # A leader stopped gracefully hands over at once (it revokes its lease) and leaves the list.
    stopped_at = time.monotonic()
    ha.masters.kill(leader.name, signal.SIGTERM)
    ha.wait_leader(other_than=leader.name)
    handover = time.monotonic() - stopped_at

    def listing_after() -> tuple[MasterInfo, list[dict[str, Any]]] | None:
        # Under one leader again: a loaded machine may move the lead between two masters.
        now = ha.wait_leader(other_than=leader.name)
        listed = ha.masters.cli(ha.masters.addresses[follower], "get", "masters", "-o", "json")
        return (now, json.loads(listed.stdout)["items"]) if ha.leader() == now else None

    new, after = wait_for("a listing under the new leader", listing_after, timeout=90)
    print(f"graceful handover in {handover:.2f}s")
    # It stopped its controllers before giving the key up (never two leaders' controllers).
    stopping = ha.masters.log(leader.name)
    stopping = stopping[stopping.rindex("stops leading: stopping") :]
    assert stopping.index("controllers stopped") < stopping.index("revoked"), stopping[-2000:]
    assert [i["metadata"]["name"] for i in after] == [n for n in NAMES if n != leader.name]
    assert [i["metadata"]["name"] for i in after if i["status"]["leader"]] == [new.name]

    # Back again, it lists every master in its pinnace.conf (itself first), and the CLI
    # given only that file reaches the cluster.
    ha.heal()
    conf = ha.masters.workdir / leader.name / "pinnace.conf"
    servers = read_client_config(conf).server.split(",")
    listed_again = ha.masters.cli("", "get", "masters", config=conf)
    assert servers[0] == ha.masters.addresses[leader.name]
    assert set(servers) == {ha.masters.addresses[n] for n in NAMES}
    assert listed_again.returncode == 0, listed_again.stderr


@dataclass
class Writer:
    """Applies deployment w-0, w-1, ... as fast as it can to whichever master takes them
    (a follower forwards to the leader; one that fails the call sends the writer on)."""

    masters: Masters
    addresses: list[str]
    acked: list[str] = field(default_factory=list)
    # (sent, acknowledged) monotonic times of every acknowledged write.
    acked_at: list[tuple[float, float]] = field(default_factory=list)
    failures: int = 0
    stop: threading.Event = field(default_factory=threading.Event)

    def run(self) -> None:
        i, target = 0, 0
        while not self.stop.is_set():
            name = f"w-{i}"
            address = self.addresses[target]
            sent = time.monotonic()
            try:
                apply(self.masters, address, name, timeout=2)
            except grpc.RpcError:
                self.failures += 1
                target = (target + 1) % len(self.addresses)
                continue
            self.acked.append(name)
            self.acked_at.append((sent, time.monotonic()))
            i += 1

    def first_sent_after(self, t: float) -> float | None:
        """When the first write sent after `t` was acknowledged (None: none yet)."""
        return min((acked for sent, acked in self.acked_at if sent > t), default=None)


def test_the_leader_killed_another_takes_writes_and_nothing_acknowledged_is_lost(
    ha: HaCluster,
) -> None:
    leader = ha.wait_leader()
    # A sealed Secret: the new leader must open it with the cluster's shared key to take over.
    secret = ha.masters.cli(leader.address, "apply", "-f", "-", stdin=SECRET)
    assert secret.returncode == 0, secret.stderr
    writer = Writer(ha.masters, [ha.masters.addresses[n] for n in NAMES])
    thread = threading.Thread(target=writer.run)
    thread.start()
    try:
        wait_for("writes to the first leader", lambda: len(writer.acked) >= 20)
        killed_at = time.monotonic()
        ha.masters.kill(leader.name)
        new = ha.wait_leader(other_than=leader.name)
        first = wait_for(
            "a write sent after the kill acknowledged", lambda: writer.first_sent_after(killed_at)
        )
        wait_for("more writes", lambda: sum(s > killed_at for s, _ in writer.acked_at) > 20)
    finally:
        writer.stop.set()
        thread.join(timeout=30)

    everyone = ",".join(ha.masters.addresses[n] for n in NAMES)  # the dead leader among them
    started = time.monotonic()
    via_list = ha.masters.cli(
        everyone, "apply", "-f", "-", stdin=DEPLOYMENT.format(name="cli", replicas=0)
    )
    cli_took = time.monotonic() - started
    assert via_list.returncode == 0, via_list.stderr
    print(f"the CLI with --master {everyone} applied in {cli_took:.2f}s")

    takeover = first - killed_at
    print(f"the first write after kill -9 was acknowledged {takeover:.2f}s after it")
    # How soon is tests.bench.ha's question (a loaded CI machine stretches it): here, that a
    # write sent after the kill was acknowledged at all and nothing acknowledged is lost.
    stored = deployments(ha.masters, new.address)
    assert [n for n in writer.acked if n not in stored] == []
    kept = json.loads(ha.masters.cli(new.address, "get", "secret", "db", "-o", "json").stdout)
    assert kept["data"] == {"password": "aHVudGVyMg=="}
    for name in NAMES:
        if name != leader.name:
            address = ha.masters.addresses[name]

            def holds_all(a: str = address) -> bool:
                return set(writer.acked) <= set(deployments(ha.masters, a))

            wait_for(f"{name} to hold every acknowledged write", holds_all)


def test_an_etcd_member_lost_is_invisible(ha: HaCluster) -> None:
    leader = ha.wait_leader()
    follower = ha.masters.addresses[next(n for n in NAMES if n != leader.name)]
    apply(ha.masters, leader.address, "before")
    step_downs = ha.masters.log(leader.name).count("stops leading")

    # etcd's own leader, the hardest member to lose: etcd elects another (500 ms here)
    # while the masters' lease renewals and writes wait; the master's reign must outlast it.
    ha.etcd.kill(ha.etcd.leader())
    for i in range(20):
        apply(ha.masters, follower if i % 2 else leader.address, f"after-{i}", timeout=5)

    assert ha.leader() == leader
    assert ha.masters.log(leader.name).count("stops leading") == step_downs
    stored = deployments(ha.masters, leader.address)
    assert {"before", *(f"after-{i}" for i in range(20))} <= set(stored)


def test_without_etcd_quorum_writes_are_refused_reads_served_and_all_recovers(
    ha: HaCluster,
) -> None:
    leader = ha.wait_leader()
    apply(ha.masters, leader.address, "before-quorum")
    follower = ha.masters.addresses[next(n for n in NAMES if n != leader.name)]
    wait_for("the follower to mirror", lambda: "before-quorum" in deployments(ha.masters, follower))

    ha.etcd.kill(ha.etcd.members[1])
    ha.etcd.kill(ha.etcd.members[2])
    refused = ha.masters.cli(
        leader.address, "apply", "-f", "-", stdin=DEPLOYMENT.format(name="during", replicas=0)
    )

    assert refused.returncode == 1
    assert refused.stderr.startswith("error: nothing was changed: ")
    assert "Traceback" not in refused.stderr
    assert "during" not in deployments(ha.masters, leader.address)
    assert "before-quorum" in deployments(ha.masters, follower)

    ha.etcd.start_member(ha.etcd.members[1])
    ha.etcd.start_member(ha.etcd.members[2])
    ha.etcd.wait_healthy(timeout=30)

    def write_accepted() -> str:
        for name in NAMES:
            try:
                apply(ha.masters, ha.masters.addresses[name], "after-quorum")
                return name
            except grpc.RpcError:
                continue
        return ""

    writer = wait_for("a write after quorum is back", write_accepted, timeout=60)
    assert {"before-quorum", "after-quorum"} <= set(
        deployments(ha.masters, ha.masters.addresses[writer])
    )


def test_a_master_advertises_the_address_it_is_given_not_its_listen_host(ha: HaCluster) -> None:
    leader = ha.wait_leader()
    follower = next(n for n in NAMES if n != leader.name)
    ha.masters.kill(follower, signal.SIGTERM)
    try:
        # As behind --listen 0.0.0.0: the name the others and the agents must dial.
        ha.masters.start(follower, "--name", follower, "--advertise-address", "localhost")
        port = ha.masters.addresses[follower].rsplit(":", 1)[1]

        def restarted_listed() -> dict[str, str] | None:
            done = ha.masters.cli(leader.address, "get", "masters", "-o", "json")
            assert done.returncode == 0, done.stderr
            items = json.loads(done.stdout)["items"]
            found = {i["metadata"]["name"]: i["spec"]["address"] for i in items}
            return found if found.get(follower, "").endswith(f":{port}") else None

        # It enters the list once its elector runs, a moment after it listens (a busy
        # machine stretches that moment): until then the list may lack it.
        addresses = wait_for(f"{follower} listed again", restarted_listed)
        via_name = ha.masters.cli(f"localhost:{port}", "get", "masters", "-o", "json")
        conf = read_client_config(ha.masters.workdir / follower / "pinnace.conf")
    finally:
        ha.masters.kill(follower, signal.SIGTERM)
        ha.heal()

    assert addresses[follower] == f"localhost:{port}"
    assert via_name.returncode == 0, via_name.stderr  # its certificate names it
    assert conf.server.split(",")[0] == f"localhost:{port}"
