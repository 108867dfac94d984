"""The agent's witness: answer peers about the master, and ask peers about the master.

Served on the advertise address (port `--witness-port`, 0: any free port, reported
to the master in NodeInfo.witness_port so the master can list it to the other
nodes). `CheckMaster` asks the session to probe the master now (one extra
heartbeat, answered within the probe wait or not; agent/fencing.py witness_times),
then answers with a signed view: connected or not, seconds since the master was
last heard (agent/attest.py). `WitnessClient.ask` is the other side: it asks every
listed peer at once, each bounded by the ask timeout (in proportion to the lease),
checks each answer's signature and nonce, and turns it into a PeerView for the
state machine; a peer that does not answer in time, or not credibly, is
unreachable. Channels to peers are kept while the peer stays listed. At the agent's
stop, `stop_witness` lets the calls' tasks end before the loop closes.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import os
from collections.abc import Awaitable, Callable
from typing import Any

import grpc

from agent.attest import AttestError, sign_view, verify_answer
from agent.credentials import NodeCredentials
from agent.fencing import ASK_TIMEOUT, HEARS_WITHIN, PeerView, peer_hears
from agent.model import PeerAddress
from kernel.rpc_tasks import (
    CANCELLED_HANDLERS_WAIT_SECONDS,
    RPC_TASKS_WAIT_SECONDS,
    RpcTasksEnd,
    finish_rpc_tasks,
)
from protos import node_pb2 as pb
from protos import node_pb2_grpc

log = logging.getLogger("pinnace.agent")

# (connected to the master, seconds since it was last heard; < 0: never)
Probe = Callable[[], Awaitable[tuple[bool, float]]]
MAX_NONCE = 64
# A witness channel stays connected: no idle timeout, keepalive pings every 20 s even
# without calls (the witness server permits them), so the first question finds it warm.
WARM_CHANNEL_OPTIONS = [
    ("grpc.client_idle_timeout_ms", 2**31 - 1),
    ("grpc.keepalive_time_ms", 20_000),
    ("grpc.keepalive_permit_without_calls", 1),
]


class WitnessListenError(Exception):
    """The witness service cannot listen where asked; one sentence naming the flag."""


def host_port(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


class WitnessServicer(node_pb2_grpc.WitnessServiceServicer):
    def __init__(self, node: str, creds: Callable[[], NodeCredentials | None]) -> None:
        self._node = node
        self._creds = creds
        self._probe: Probe | None = None

    def bind(self, probe: Probe) -> None:
        """Connects the servicer to the session that can probe the master."""
        self._probe = probe

    async def CheckMaster(
        self, request: pb.CheckMasterRequest, context: grpc.aio.ServicerContext
    ) -> pb.CheckMasterResponse:
        if len(request.nonce) > MAX_NONCE:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, "nonce too long")
        connected, since = (False, -1.0) if self._probe is None else await self._probe()
        view = pb.WitnessView(
            nonce=request.nonce,
            node_name=self._node,
            connected=connected,
            since_ack_seconds=since,
        )
        log.debug(
            "peer %s asked about the master: connected=%s, last heard %.2fs ago",
            request.asker[:80],
            connected,
            since,
        )
        return sign_view(view, self._creds())


async def serve_witness(host: str, port: int, servicer: WitnessServicer) -> tuple[Any, int]:
    """Starts the witness server; (server, the port it listens on)."""
    # No SO_REUSEPORT: two agents on one machine must not share a port (an answer from
    # the wrong agent would be refused, and the asker would count the peer unreachable).
    server = grpc.aio.server(
        options=[
            ("grpc.so_reuseport", 0),
            # Peers keep their channels warm with keepalive pings (WARM_CHANNEL_OPTIONS).
            ("grpc.keepalive_permit_without_calls", 1),
            ("grpc.http2.min_ping_interval_without_data_ms", 10_000),
        ]
    )
    node_pb2_grpc.add_WitnessServiceServicer_to_server(servicer, server)
    address = host_port(host, port)
    try:
        bound = server.add_insecure_port(address)
    except RuntimeError:  # grpc's way of saying the address is taken or not ours
        bound = 0
    if not bound:
        await server.stop(grace=None)
        raise WitnessListenError(
            f"--witness-port {port}: cannot listen on {address} (port taken, or not an address "
            "of this machine); pick another port, or 0 for any free one"
        )
    await server.start()
    return server, bound


async def stop_witness(
    server: Any, wait: float = RPC_TASKS_WAIT_SECONDS, then: float = CANCELLED_HANDLERS_WAIT_SECONDS
) -> RpcTasksEnd:
    """Stops the witness server and lets its calls' tasks end before the agent's loop
    closes. A peer's question in flight at SIGTERM is cancelled by the stop, but its
    handler's cleanup (the probe's wait for a heartbeat, agent/worker.py wait_event) ends
    turns later; left to asyncio.run's teardown, gRPC prints a CancelledError traceback
    (kernel/rpc_tasks.py)."""
    await server.stop(grace=None)
    return await finish_rpc_tasks(wait, then)


class WitnessClient:
    def __init__(self, node: str, creds: Callable[[], NodeCredentials | None]) -> None:
        self._node = node
        self._creds = creds
        self._channels: dict[str, grpc.aio.Channel] = {}

    async def warm(self, peers: tuple[PeerAddress, ...]) -> None:
        """Connects to every listed peer now, ahead of need: a question asked over a cold
        connection during a master pause could time out on the connection alone (a
        freshly joined agent fenced with "0 peers answered"). Channels keep their
        connection alive with keepalive pings and never go idle."""
        await self._drop_unlisted(peers)
        for peer in peers:
            self._channel(host_port(peer.address, peer.port)).get_state(try_to_connect=True)

    async def ask(
        self,
        peers: tuple[PeerAddress, ...],
        timeout: float = ASK_TIMEOUT,
        hears_within: float = HEARS_WITHIN,
    ) -> list[PeerView]:
        await self._drop_unlisted(peers)
        answers = (self._ask_one(p, timeout, hears_within) for p in peers)
        return list(await asyncio.gather(*answers))

    async def _drop_unlisted(self, peers: tuple[PeerAddress, ...]) -> None:
        listed = {host_port(p.address, p.port) for p in peers}
        for target in set(self._channels) - listed:
            await self._channels.pop(target).close()

    def _channel(self, target: str) -> grpc.aio.Channel:
        channel = self._channels.get(target)
        if channel is None:
            channel = self._channels[target] = grpc.aio.insecure_channel(
                target, options=WARM_CHANNEL_OPTIONS
            )
        return channel

    async def _ask_one(self, peer: PeerAddress, timeout: float, hears_within: float) -> PeerView:
        target = host_port(peer.address, peer.port)
        channel = self._channel(target)
        nonce = os.urandom(16)
        creds = self._creds()
        try:
            stub = node_pb2_grpc.WitnessServiceStub(channel)
            answer = await stub.CheckMaster(
                pb.CheckMasterRequest(nonce=nonce, asker=self._node), timeout=timeout
            )
            view = verify_answer(
                answer, nonce, peer.name, creds.ca_pem if creds else None, dt.datetime.now(dt.UTC)
            )
        except (grpc.aio.AioRpcError, AttestError) as exc:
            reason = exc.details() if isinstance(exc, grpc.aio.AioRpcError) else str(exc)
            log.info("peer %s (%s) gave no usable answer: %s", peer.name, target, reason)
            return PeerView(peer.name, reachable=False)
        return PeerView(
            peer.name, True, peer_hears(view.connected, view.since_ack_seconds, hears_within)
        )

    async def close(self) -> None:
        for channel in self._channels.values():
            await channel.close()
        self._channels.clear()
