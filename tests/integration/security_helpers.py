"""gRPC clients for security tests: admin, node, anonymous and plaintext, against a real master.

Each helper builds a channel the way a real client would (the admin config the
master wrote, an agent's state dir, the anonymous bootstrap certificate, or no
TLS at all), so the tests exercise the master's real TLS and authorisation.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path

import grpc

from agent import credentials as cr
from agent.credentials import NodeCredentials
from agent.join import join, mtls_channel, parse_token
from master.pki.clientconfig import read_client_config
from protos import node_pb2 as pb
from protos import node_pb2_grpc
from tests.integration.cluster import REPO, LocalCluster


def admin_channel(cluster: LocalCluster) -> grpc.Channel:
    cfg = read_client_config(cluster.config_path)
    creds = grpc.ssl_channel_credentials(cfg.ca_pem, cfg.key_pem, cfg.cert_pem)
    return grpc.secure_channel(cluster.master_address, creds)


def node_channel(cluster: LocalCluster, state_dir: Path) -> grpc.Channel:
    stored = cr.load(state_dir)
    assert stored is not None, f"no credentials in {state_dir}"
    creds = grpc.ssl_channel_credentials(stored.ca_pem, stored.key_pem, stored.cert_pem)
    return grpc.secure_channel(cluster.master_address, creds)


def anonymous_channel(cluster: LocalCluster) -> grpc.Channel:
    ca_pem = read_client_config(cluster.config_path).ca_pem
    key, cert = cr.anonymous_identity(dt.datetime.now(dt.UTC))
    return grpc.secure_channel(
        cluster.master_address, grpc.ssl_channel_credentials(ca_pem, key, cert)
    )


def run_agent(cluster: LocalCluster, name: str, *args: str) -> subprocess.CompletedProcess[str]:
    """An agent process expected to stop on its own (refused); at most 30 s."""
    return subprocess.run(
        [
            *(sys.executable, "-m", "agent", "--master", cluster.master_address, "--name", name),
            *("--advertise-address", "127.0.0.1", "--no-node-proxy", "--cluster-dns=none", *args),
        ],
        capture_output=True,
        text=True,
        env=cluster.env,
        cwd=REPO,
        timeout=30,
    )


class RogueAgent:
    """A node that joined legitimately and then says whatever a test wants it to say."""

    def __init__(self, cluster: LocalCluster, name: str) -> None:
        self.cluster = cluster
        self.name = name
        self.creds: NodeCredentials | None = None
        self.assignments: list[pb.PodAssignments] = []
        self._outgoing: asyncio.Queue[pb.AgentMessage] = asyncio.Queue()
        self._tasks: list[asyncio.Task[None]] = []
        self._channel: grpc.aio.Channel | None = None
        # The last heartbeat sequence sent, and the last the master acknowledged.
        self.sent_beat = 0
        self.acked_beat = 0

    async def join(self) -> None:
        token = parse_token(await asyncio.to_thread(self.cluster.join_token))
        self.creds = await join(self.cluster.master_address, token, self.name, cr.new_key_pem())

    async def register(self, capacity: pb.Resources) -> None:
        assert self.creds is not None
        self._channel = mtls_channel(self.cluster.master_address, self.creds)
        stub = node_pb2_grpc.NodeServiceStub(self._channel)
        node = pb.NodeInfo(
            name=self.name, address="127.0.0.1", capacity=capacity, allocatable=capacity
        )
        reply = await stub.RegisterNode(pb.RegisterNodeRequest(node=node), timeout=10)
        hello = pb.SessionHello(node_name=self.name, session_id=reply.session_id)
        self._outgoing.put_nowait(pb.AgentMessage(hello=hello))

        async def requests() -> AsyncIterator[pb.AgentMessage]:
            while True:
                yield await self._outgoing.get()

        call = stub.StreamSession(requests())

        async def heartbeats() -> None:
            while True:
                self.sent_beat += 1
                beat = pb.Heartbeat(sequence=self.sent_beat)
                self._outgoing.put_nowait(pb.AgentMessage(heartbeat=beat))
                await asyncio.sleep(0.5)

        async def receive() -> None:
            async for msg in call:
                if msg.WhichOneof("body") == "assignments":
                    self.assignments.append(msg.assignments)
                elif msg.WhichOneof("body") == "heartbeat_ack":
                    self.acked_beat = max(self.acked_beat, msg.heartbeat_ack.sequence)

        self._tasks = [asyncio.create_task(heartbeats()), asyncio.create_task(receive())]

    def report(self, pod: str, epoch: int, phase: str) -> None:
        status = pb.PodStatusReport(pod_name=pod, epoch=epoch, phase=phase, ready=True)
        self._outgoing.put_nowait(pb.AgentMessage(statuses=pb.PodStatusBatch(pods=[status])))

    async def read_by_master(self, timeout: float = 30.0) -> None:
        """Until the master has read everything this node sent before the call: the master
        reads a session's messages in order, and acknowledges a heartbeat once it has read
        it, so the ack of the next beat (queued after them) says it read them all."""
        target = self.sent_beat + 1
        deadline = time.monotonic() + timeout
        while self.acked_beat < target:
            assert time.monotonic() < deadline, f"{self.name}: beat {target} never acked"
            await asyncio.sleep(0.05)

    async def close(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._channel is not None:
            await self._channel.close()
