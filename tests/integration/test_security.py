"""Secure by default, against real processes: tokens, certificates, credentials, rotation.

Every test starts a real master (TLS on, as LocalCluster always does) and real
agents or gRPC clients on 127.0.0.1, and checks what an attacker or a confused
operator meets: refusals in one sentence, nothing stored, nothing crashed.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import grpc
import pytest

from agent import credentials as cr
from agent.join import join, parse_token
from protos import cluster_pb2, cluster_pb2_grpc, node_pb2, node_pb2_grpc
from tests.integration.cluster import REPO, LocalCluster, wait_for
from tests.integration.security_helpers import (
    RogueAgent,
    admin_channel,
    anonymous_channel,
    node_channel,
    run_agent,
)
from tests.pki_support import foreign_admin_config, write_client_config

pytestmark = pytest.mark.integration


def _one_sentence(result: subprocess.CompletedProcess[str], phrase: str) -> None:
    assert result.returncode == 1, (result.returncode, result.stderr)
    lines = [ln for ln in result.stderr.splitlines() if ln.startswith("pinnace") or "error" in ln]
    assert "Traceback" not in result.stderr, result.stderr
    assert any(phrase in ln for ln in lines), result.stderr


def _node_names(cluster: LocalCluster) -> set[str]:
    return {n["metadata"]["name"] for n in cluster.get_json("nodes")["items"]}


def _ready(cluster: LocalCluster, name: str) -> bool:
    for node in cluster.get_json("nodes")["items"]:
        if node["metadata"]["name"] == name:
            return any(
                c["type"] == "Ready" and c["status"] == "True" for c in node["status"]["conditions"]
            )
    return False


def _code(fn: Any, request: Any) -> grpc.StatusCode:
    try:
        fn(request, timeout=10)
    except grpc.RpcError as e:
        return e.code()
    return grpc.StatusCode.OK


def test_agents_without_a_valid_token_are_refused(cluster: LocalCluster, tmp_path: Path) -> None:
    # One join at a time: the last part holds it and shows a busy master's refusal.
    cluster.start_master("--no-lb", "--max-joins-in-flight", "1")
    good = cluster.join_token()
    ca_hash = good.rsplit(".", 1)[1]
    expired = cluster.cli("token", "create", "--ttl", "1s").stdout.strip()
    revoked = cluster.cli("token", "create").stdout.strip()
    cluster.cli("token", "revoke", revoked.split(".")[1])
    time.sleep(1.2)  # let the 1 s token expire
    cases = {
        "none": ([], "no credentials for node"),
        "wrong": (
            ["--token", f"pinnace1.aaaaaaaa.{'b' * 24}.{ca_hash}"],
            "the join token is not valid",
        ),
        "malformed": (["--token", "letmein"], "--token: malformed"),
        "expired": (["--token", expired], "has expired"),
        "revoked": (["--token", revoked], "was revoked"),
        "mitm": (
            ["--token", good.rsplit(".", 1)[0] + "." + "A" * 43],
            "man-in-the-middle",
        ),
    }

    for case, (args, phrase) in cases.items():
        name = cluster.node(case)
        result = run_agent(cluster, name, "--state-dir", str(tmp_path / case), *args)
        _one_sentence(result, phrase)
        assert not (tmp_path / case / "node.crt").exists()

    assert _node_names(cluster) == set()
    listing = cluster.cli("token", "list").stdout
    assert "revoked" in listing and "expired" in listing
    assert good.split(".")[2] not in listing  # never a secret

    # A busy master: its one join slot is held by a node that joined and has not
    # registered yet, so a real agent's join is refused (RESOURCE_EXHAUSTED, with a
    # retry-after); the agent keeps trying and joins once the holder has registered.
    holder = cluster.node("holder")
    held = asyncio.run(join(cluster.master_address, parse_token(good), holder, cr.new_key_pem()))
    late = cluster.start_agent("late")
    log = cluster.workdir / "agent-late.log"
    wait_for("the master to tell the agent it is busy", lambda: b"busy" in log.read_bytes(), 30)
    assert late not in _node_names(cluster)
    cr.save(tmp_path / "holder", held)
    register = node_pb2.RegisterNodeRequest(
        node=node_pb2.NodeInfo(name=holder, address="127.0.0.1")
    )
    node_pb2_grpc.NodeServiceStub(node_channel(cluster, tmp_path / "holder")).RegisterNode(
        register, timeout=10
    )
    wait_for(f"{late} Ready after the busy master took it", lambda: _ready(cluster, late), 30)
    assert b"at most 1 at a time" in log.read_bytes()


def test_a_certificate_acts_only_for_its_own_node(cluster: LocalCluster, tmp_path: Path) -> None:
    cluster.start_master("--no-lb")
    a = cluster.start_agent("a")
    wait_for(f"{a} Ready", lambda: _ready(cluster, a), 30)
    other = cluster.node("b")

    # a second agent with a's name, while a is alive, is refused
    second = run_agent(
        cluster, a, "--token", cluster.join_token(), "--state-dir", str(tmp_path / "dup")
    )
    _one_sentence(second, "is already taken by a connected agent")

    as_a = node_channel(cluster, cluster.agent_state_dir(a))
    nodes = node_pb2_grpc.NodeServiceStub(as_a)
    impostor = node_pb2.RegisterNodeRequest(node=node_pb2.NodeInfo(name=other, address="127.0.0.1"))
    try:
        nodes.RegisterNode(impostor, timeout=10)
        raise AssertionError("RegisterNode for another node was accepted")
    except grpc.RpcError as e:
        assert e.code() == grpc.StatusCode.PERMISSION_DENIED
        assert f"of node '{a}' may not act for node '{other}'" in e.details()

    hello = node_pb2.AgentMessage(hello=node_pb2.SessionHello(node_name=other, session_id="x"))
    stream = nodes.StreamSession(iter([hello]))
    with pytest.raises(grpc.RpcError) as caught:
        list(stream)
    assert caught.value.code() == grpc.StatusCode.PERMISSION_DENIED

    # a node certificate is not an admin one, and an admin certificate is not a node's
    cluster_as_a = cluster_pb2_grpc.ClusterServiceStub(as_a)
    assert _code(cluster_as_a.GetObjects, cluster_pb2.GetObjectsRequest(kind="Pod")) == (
        grpc.StatusCode.PERMISSION_DENIED
    )
    admin_nodes = node_pb2_grpc.NodeServiceStub(admin_channel(cluster))
    register_a = node_pb2.RegisterNodeRequest(node=node_pb2.NodeInfo(name=a, address="127.0.0.1"))
    assert _code(admin_nodes.RegisterNode, register_a) == grpc.StatusCode.PERMISSION_DENIED
    anonymous = cluster_pb2_grpc.ClusterServiceStub(anonymous_channel(cluster))
    assert _code(anonymous.GetObjects, cluster_pb2.GetObjectsRequest(kind="Pod")) == (
        grpc.StatusCode.UNAUTHENTICATED
    )
    assert other not in _node_names(cluster)
    assert _ready(cluster, a)


def test_the_cli_needs_credentials_and_plaintext_gets_nowhere(
    cluster: LocalCluster, tmp_path: Path
) -> None:
    cluster.start_master("--no-lb")
    bare = {k: v for k, v in cluster.env.items() if k != "PINNACE_CONFIG"}
    bare["HOME"] = str(tmp_path / "home")

    def cli(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
        command = [sys.executable, "-m", "master.cli.main", "--master", cluster.master_address]
        return subprocess.run(
            [*command, *args], capture_output=True, text=True, env=env, cwd=REPO, timeout=60
        )

    none = cli(bare, "get", "pods")
    assert none.returncode == 1 and none.stdout == ""
    assert none.stderr.strip() == (
        f"error: no credentials for the pinnace master at {cluster.master_address}: pass "
        f"--config FILE or set PINNACE_CONFIG (the master writes DATA_DIR/pinnace.conf when "
        f"it starts)"
    )

    # credentials from another cluster: the master's certificate does not verify, nor ours
    config = foreign_admin_config(cluster.master_address)
    foreign = write_client_config(tmp_path / "foreign.conf", config)
    wrong = cli({**bare, "PINNACE_CONFIG": str(foreign)}, "get", "pods")
    assert wrong.returncode == 1 and len(wrong.stderr.strip().splitlines()) == 1
    assert "cannot establish TLS with the pinnace master" in wrong.stderr

    # --insecure is refused by a TLS master, and a plaintext client gets nothing at all
    insecure = cli(bare, "--insecure", "get", "pods")
    assert insecure.returncode == 1 and "cannot reach" in insecure.stderr
    plain = cluster_pb2_grpc.ClusterServiceStub(grpc.insecure_channel(cluster.master_address))
    assert _code(plain.GetObjects, cluster_pb2.GetObjectsRequest(kind="Pod")) == (
        grpc.StatusCode.UNAVAILABLE
    )

    ok = cli({**bare, "PINNACE_CONFIG": str(cluster.config_path)}, "get", "pods")
    assert ok.returncode == 0, ok.stderr
    assert cluster.config_path.stat().st_mode & 0o777 == 0o600


def test_insecure_mode_is_refused_off_loopback(cluster: LocalCluster, tmp_path: Path) -> None:
    command = [sys.executable, "-m", "master.cli.main", "master", "--insecure", "--no-lb"]
    result = subprocess.run(
        [*command, "--listen", "0.0.0.0:0", "--data-dir", str(tmp_path / "d")],
        capture_output=True,
        text=True,
        env=cluster.env,
        cwd=REPO,
        timeout=60,
    )
    assert result.returncode != 0
    assert "--insecure is only allowed on a loopback address" in result.stderr
    assert "Traceback" not in result.stderr

    agent = subprocess.run(
        [sys.executable, "-m", "agent", "--master", "10.1.2.3:7400", "--name", "x", "--insecure"],
        capture_output=True,
        text=True,
        env=cluster.env,
        cwd=REPO,
        timeout=60,
    )
    assert agent.returncode == 1 and "only allowed to a master on this machine" in agent.stderr


def test_an_insecure_laptop_cluster_still_works(cluster: LocalCluster) -> None:
    cluster.start_master("--no-lb", "--insecure")
    node = cluster.start_agent("n1")
    wait_for(f"{node} Ready", lambda: _ready(cluster, node), 30)
    assert not cluster.config_path.exists()


def test_a_restarted_agent_needs_no_token(cluster: LocalCluster) -> None:
    cluster.start_master("--no-lb")
    node = cluster.start_agent("n1")
    wait_for(f"{node} Ready", lambda: _ready(cluster, node), 30)
    cluster.kill(cluster.agents[node], signal.SIGTERM)
    serial = cr.load(cluster.agent_state_dir(node))

    log = (cluster.workdir / "agent-again.log").open("ab")
    proc = subprocess.Popen(
        [
            *(sys.executable, "-m", "agent", "--master", cluster.master_address),
            *("--name", node, "--advertise-address", "127.0.0.1"),
            *("--state-dir", str(cluster.agent_state_dir(node)), "--no-node-proxy"),
            "--cluster-dns=none",
        ],
        stdout=log,
        stderr=log,
        env={k: v for k, v in cluster.env.items() if k != "PINNACE_TOKEN"},
        cwd=REPO,
    )
    cluster._all_procs.append(proc)
    log.close()

    wait_for("the agent to re-register", lambda: b"registered node" in _log_tail(cluster), 30)
    assert _ready(cluster, node)
    assert cr.load(cluster.agent_state_dir(node)) == serial
    uses = cluster.cli("token", "list").stdout.splitlines()[1].split()[3]
    assert uses == "1"


def _log_tail(cluster: LocalCluster) -> bytes:
    return (cluster.workdir / "agent-again.log").read_bytes()


def test_node_certificates_rotate_before_they_expire(cluster: LocalCluster) -> None:
    cluster.start_master("--no-lb", "--node-cert-ttl", "9s")
    node = cluster.start_agent("n1")
    wait_for(f"{node} Ready", lambda: _ready(cluster, node), 30)
    state = cluster.agent_state_dir(node)
    first = cr.load(state)
    assert first is not None
    serials = {first.cert.serial_number}

    def rotated_twice() -> bool:
        creds = cr.load(state)
        if creds is not None:
            serials.add(creds.cert.serial_number)
        return len(serials) >= 3

    wait_for("two renewals", rotated_twice, 40, interval=0.5)
    current = cr.load(state)
    assert current is not None and current.key_pem == first.key_pem  # the key stays
    assert time.time() > first.not_after()  # the first certificate is dead by now
    assert _ready(cluster, node)

    # a fresh connection (master restarted) is made with the renewed certificate
    port = int(cluster.master_address.rsplit(":", 1)[1])
    cluster.kill_master()
    cluster.start_master("--no-lb", "--node-cert-ttl", "9s", port=port)
    wait_for(f"{node} Ready after the master restart", lambda: _ready(cluster, node), 30)
    log = (cluster.workdir / "agent-n1.log").read_text()
    assert "renewed the node certificate" in log
    assert "EXPIRED" not in log


def test_a_misbehaving_agent_is_contained(cluster: LocalCluster, tmp_path: Path) -> None:
    cluster.start_master("--no-lb")
    manifest = tmp_path / "one.yaml"
    manifest.write_text(
        "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: one\nspec:\n  replicas: 1\n"
        "  selector:\n    matchLabels: {app: one}\n  template:\n    metadata:\n"
        "      labels: {app: one}\n    spec:\n      containers:\n"
        "      - name: c\n        image: pinnace/httpd:latest\n"
    )

    async def scenario() -> None:
        huge = node_pb2.Resources(cpu_millis=2**62, memory_bytes=2**62)
        x, y = RogueAgent(cluster, cluster.node("x")), RogueAgent(cluster, cluster.node("y"))
        try:
            for rogue in (x, y):
                await rogue.join()
                await rogue.register(huge)
            await asyncio.to_thread(wait_for, "both Ready", lambda: _ready(cluster, y.name), 20)
            await asyncio.to_thread(cluster.cli, "apply", "-f", str(manifest))

            def assigned() -> tuple[RogueAgent, RogueAgent, node_pb2.PodAssignment] | None:
                for owner, stranger in ((x, y), (y, x)):
                    if owner.assignments and owner.assignments[-1].pods:
                        return owner, stranger, owner.assignments[-1].pods[0]
                return None

            found = None
            for _ in range(200):
                found = assigned()
                if found:
                    break
                await asyncio.sleep(0.1)
            assert found is not None, "the pod was never assigned"
            owner, stranger, pod = found

            stranger.report(pod.name, pod.epoch, "Running")
            stranger.report("no-such-pod", 1, "Running")
            await stranger.read_by_master()  # (a fixed 1 s passed unchecked when it had not)
            status = await asyncio.to_thread(cluster.get_json, "pods", pod.name)
            assert status["status"]["phase"] == "Pending"

            owner.report(pod.name, pod.epoch, "Running")

            def running() -> bool:
                return bool(cluster.get_json("pods", pod.name)["status"]["phase"] == "Running")

            await asyncio.to_thread(wait_for, "the owner's report to count", running, 10)
        finally:
            await x.close()
            await y.close()

    asyncio.run(scenario())
    capacity = {
        n["metadata"]["name"]: n["status"]["capacity"] for n in cluster.get_json("nodes")["items"]
    }
    for reported in capacity.values():
        assert reported["cpu"] == "1000000"  # clamped to 1e9 millicores, not 2**62
    assert json.dumps(capacity).count(str(2**62)) == 0
    assert os.path.exists(cluster.config_path)
