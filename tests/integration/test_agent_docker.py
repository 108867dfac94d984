"""The real agent process (`python -m agent`) on the real Docker engine, driven by a fake master.

Covers what the node agent promises: assigned pods run as labelled containers with
ports published on the advertise address and statuses reported; a killed container
is restarted and counted; an unpullable image backs off without hurting other pods;
a stop order removes the pod; a SIGKILLed agent comes back and adopts its containers;
a second agent on the same engine leaves them alone; SIGTERM leaves them running;
an unreachable master gives one clear log line and no traceback.
"""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from protos import node_pb2 as pb
from tests.support import HOLDER_LABEL, namespace_settings, node_made, remove_container
from tests.unit.test_agent_fake_master import FakeMaster, eventually, web_assignment

pytestmark = pytest.mark.integration

IMAGE = "pinnace/httpd:latest"
REPO = Path(__file__).resolve().parents[2]


# The agent flag for no standby holders (agent/main.py --standby-sandbox).
NO_STANDBY = ("--no-standby-sandbox",)


class Agents:
    """Starts `python -m agent` processes; ends each by PID and removes their containers by id."""

    def __init__(self, tmp_path: Path, client: Any) -> None:
        self.tmp_path = tmp_path
        self.client = client
        self.procs: list[subprocess.Popen[bytes]] = []
        self.nodes: list[str] = []

    def node_name(self, prefix: str) -> str:
        name = node_made(f"{prefix}-{uuid.uuid4().hex[:6]}")
        self.nodes.append(name)
        return name

    def start(self, master: str, node: str, *extra: str) -> subprocess.Popen[bytes]:
        log = open(self.log_path(node), "ab")  # noqa: SIM115 - kept open for the process' life
        proc = subprocess.Popen(
            [
                *(sys.executable, "-m", "agent", "--master", master, "--name", node),
                *("--advertise-address", "127.0.0.1", "--capacity-cpu", "2"),
                *("--capacity-memory", "2Gi", "--log-level", "DEBUG", "--no-node-proxy"),
                *("--cluster-dns=none", *extra),
                "--insecure",  # the fake master speaks plaintext on 127.0.0.1
            ],
            cwd=REPO,
            stdout=log,
            stderr=log,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
        log.close()
        self.procs.append(proc)
        return proc

    def log_path(self, node: str) -> Path:
        return self.tmp_path / f"agent-{node}.log"

    def log(self, node: str) -> str:
        return self.log_path(node).read_text(errors="replace")

    def containers(self, node: str) -> dict[str, dict[str, Any]]:
        """pod name -> container summary, for this node's containers (not the pods' sandbox
        holders, labelled pinnace.sandbox)."""
        found = self.client.api.containers(all=True, filters={"label": f"pinnace.node={node}"})
        return {c["Labels"]["pinnace.pod"]: c for c in found if HOLDER_LABEL not in c["Labels"]}

    def close(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                proc.kill()
            proc.wait(timeout=10)
        for node in self.nodes:
            for c in self.client.api.containers(
                all=True, filters={"label": f"pinnace.node={node}"}
            ):
                remove_container(self.client, c["Id"])


@pytest.fixture
def agents(tmp_path: Path, docker_client: Any) -> Iterator[Agents]:
    a = Agents(tmp_path, docker_client)
    try:
        yield a
    finally:
        a.close()


def http_get(port: int) -> int:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=2) as response:
        return int(response.status)


def serves(port: int) -> bool:
    """Whether the page at `port` answers 200: nginx listens a moment after its container
    starts, so a pod just reported Running may not answer yet (asked until a deadline)."""
    try:
        return http_get(port) == 200
    except OSError:  # refused, reset, or closed before an answer (urllib's errors are OSErrors)
        return False


def running(master: FakeMaster, node: str, pod: str) -> pb.PodStatusReport | None:
    status = master.status(node, pod)
    return status if status is not None and status.phase == "Running" and status.ready else None


def test_agent_runs_restarts_stops_and_adopts_pods(agents: Agents) -> None:
    async def scenario() -> None:
        master = FakeMaster(heartbeat=0.2, lease=10.0)
        address = await master.start()
        node = agents.node_name("agt")
        other = agents.node_name("oth")
        try:
            # No standby holders: this test covers the restart in place (the same container
            # started again); a crash replaced into its pod's standby is test_standby_sandbox's.
            # With them, a kill while web-b's standby was being made went to the standby
            # (df4b4a2), a new container, in one CI run at load ~15.
            agent = agents.start(address, node, *NO_STANDBY)
            await eventually(lambda: master.connected(node), 20, "the agent's session")
            master.assign(
                node,
                web_assignment("web-a", IMAGE, epoch=11),
                web_assignment("web-b", IMAGE, epoch=12, env={"MESSAGE": "b"}),
                web_assignment(
                    "broken", "127.0.0.1:9/pinnace-agent-test/no-such-image:1", epoch=13
                ),
            )

            # Two real containers, labelled, published on 127.0.0.1, reported Running.
            a = await eventually(lambda: running(master, node, "web-a"), 30, "web-a Running")
            b = await eventually(lambda: running(master, node, "web-b"), 30, "web-b Running")
            found = agents.containers(node)
            assert set(found) == {"web-a", "web-b"}
            labels = found["web-a"]["Labels"]
            assert labels["pinnace.node"] == node
            assert labels["pinnace.epoch"] == "11"
            assert labels["pinnace.label.app"] == "web"
            assert found["web-a"]["Names"] == [f"/pinnace-{node}-web-a-web"]
            port_a = a.port_map["80/TCP"]
            # Published by the pod's namespace: its sandbox holder's (or its own, without).
            attrs = agents.client.api.inspect_container(found["web-a"]["Id"])
            published = namespace_settings(agents.client.api, attrs)["Ports"]["80/tcp"]
            assert [(p["HostIp"], int(p["HostPort"])) for p in published] == [("127.0.0.1", port_a)]
            assert a.host_ip == "127.0.0.1" and a.epoch == 11
            await eventually(lambda: serves(port_a), 20, "web-a's page")
            await eventually(lambda: serves(b.port_map["80/TCP"]), 20, "web-b's page")

            # An image that cannot be pulled backs off; the other pods are unaffected.
            await eventually(
                lambda: (
                    (s := master.status(node, "broken"))
                    and s.containers[0].reason == "ImagePullBackOff"
                ),
                20,
                "ImagePullBackOff",
            )
            reasons = [r.containers[0].reason for n, r in master.reports if r.pod_name == "broken"]
            assert "ErrImagePull" in reasons
            assert master.status(node, "broken").phase == "Pending"  # type: ignore[union-attr]

            # A killed container is restarted by the agent, quickly, and counted.
            old_b = found["web-b"]["Id"]
            agents.client.api.kill(old_b)
            restarted = await eventually(
                lambda: (
                    (s := running(master, node, "web-b"))
                    and s.containers[0].restart_count == 1
                    and s
                ),
                10,
                "web-b restarted",
            )
            # Its first restart is immediate: the same container is started again
            # (agent/restart_path.py); labels cannot change, so its name carries the restart
            # (renamed once it runs, beside the report: soon after it).
            assert restarted.containers[0].container_id == old_b
            b_now = await eventually(
                lambda: (
                    (c := agents.containers(node)["web-b"])["Names"][0].startswith(
                        f"/pinnace-{node}-web-b-web.restarted-"
                    )
                    and c
                ),
                30,
                "web-b renamed as started again",
            )
            assert b_now["Labels"]["pinnace.restart-count"] == "0"

            # A second agent with another name on the same engine leaves these alone.
            master.assign(other)
            agents.start(address, other)
            await eventually(lambda: master.connected(other), 20, "the second agent's session")
            before = {p: c["Id"] for p, c in agents.containers(node).items()}

            # SIGKILL the agent and start it again: it adopts its containers.
            registrations = len([r for r in master.registrations if r.node.name == node])
            agent.kill()
            agent.wait(timeout=10)
            agent = agents.start(address, node, *NO_STANDBY)
            await eventually(
                lambda: (
                    len([r for r in master.registrations if r.node.name == node]) > registrations
                ),
                20,
                "re-registration",
            )
            registration = [r for r in master.registrations if r.node.name == node][-1]
            assert {p.pod_name: p.epoch for p in registration.pods} == {"web-a": 11, "web-b": 12}
            assert all(p.phase == "Running" for p in registration.pods)
            # The restart in place is still counted by an agent that never saw it.
            adopted_b = next(p for p in registration.pods if p.pod_name == "web-b")
            assert adopted_b.containers[0].restart_count == 1
            await eventually(lambda: master.connected(node), 20, "the new session")
            # Ten heartbeats of the new session (2 s, more on a slow machine) span several
            # relists: nothing may be restarted meanwhile.
            beats = len(master.heartbeats)
            await eventually(lambda: len(master.heartbeats) >= beats + 10, 20, "10 heartbeats")
            assert {p: c["Id"] for p, c in agents.containers(node).items()} == before
            assert agents.containers(other) == {}

            # A stop order removes the pod and reports removed=true.
            master.assign(
                node,
                web_assignment("web-a", IMAGE, epoch=11, stop=True),
                web_assignment("web-b", IMAGE, epoch=12, env={"MESSAGE": "b"}),
            )
            await eventually(
                lambda: (s := master.status(node, "web-a")) and s.removed, 20, "web-a removed"
            )
            assert set(agents.containers(node)) == {"web-b"}

            # SIGTERM: the agent exits cleanly and leaves its containers running.
            agent.send_signal(signal.SIGTERM)
            assert agent.wait(timeout=15) == 0
            assert agents.containers(node)["web-b"]["State"] == "running"
        finally:
            await master.stop()
        assert "Traceback" not in agents.log(node)
        assert "RestartContainer pod=web-b" in agents.log(node)

    asyncio.run(scenario())


def test_unreachable_master_logs_one_clear_line_and_registers_when_it_comes(
    agents: Agents,
) -> None:
    async def scenario() -> None:
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            port = probe.getsockname()[1]
        address = f"127.0.0.1:{port}"
        node = agents.node_name("late")
        agents.start(address, node, "--log-level", "DEBUG")
        await eventually(lambda: "cannot register" in agents.log(node), 20, "the log line")
        # Several more attempts (logged at DEBUG only), before the master comes.
        await eventually(lambda: "attempt 3 to reach" in agents.log(node), 20, "3 attempts")

        master = FakeMaster()
        await master.start(address)
        try:
            await eventually(lambda: master.connected(node), 20, "registration")
        finally:
            await master.stop()
        log = agents.log(node)
        assert log.count("cannot register with master") == 1
        assert "connection refused" in log
        assert "Traceback" not in log

    asyncio.run(scenario())


def test_a_frozen_agent_fences_itself_then_takes_fresh_assignments(agents: Agents) -> None:
    async def scenario() -> None:
        master = FakeMaster(heartbeat=0.2, lease=2.0)
        address = await master.start()
        node = agents.node_name("frz")
        try:
            agent = agents.start(address, node)
            await eventually(lambda: master.connected(node), 20, "the agent's session")
            master.assign(node, web_assignment("web-f", IMAGE, epoch=5))
            await eventually(lambda: running(master, node, "web-f"), 30, "web-f Running")
            before = agents.containers(node)["web-f"]["Id"]
            sessions = len(master.hellos)

            agent.send_signal(signal.SIGSTOP)
            await asyncio.sleep(2.5)  # longer than the lease
            agent.send_signal(signal.SIGCONT)

            await eventually(lambda: "Fenced" in agents.log(node), 10, "the fence")
            await eventually(lambda: len(master.hellos) > sessions, 10, "a fresh session")
            await eventually(
                lambda: (
                    (c := agents.containers(node).get("web-f"))
                    and c["Id"] != before
                    and c["State"] == "running"
                ),
                20,
                "web-f started again under the fresh lease",
            )
        finally:
            await master.stop()
        log = agents.log(node)
        assert "frozen for" in log
        assert "Traceback" not in log

    asyncio.run(scenario())
