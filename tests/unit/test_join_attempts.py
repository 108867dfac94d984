"""The agent's join retries over real TLS, in-process (agent/join.py): a master that says
"busy" costs the retry an RPC, not new TLS connections.

A join storm on an overloaded master is answered "busy" (RESOURCE_EXHAUSTED) or not in
time (DEADLINE_EXCEEDED) many times over; each attempt used to fetch the pinned CA over
a TLS connection of its own and open a new TLS channel for JoinNode: two handshakes on
the master (and a signed anonymous certificate on the agent) before the master could
say "busy" again. The master here is a JoinService on the real master PKI behind a TCP
relay that counts the connections made to it.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
from collections.abc import Callable
from pathlib import Path

import grpc

from agent.join import prepare
from master.pki.admission import RETRY_AFTER_METADATA
from master.pki.bootstrap import ensure_pki
from master.pki.ca import ca_hash, cert_pem
from protos import security_pb2, security_pb2_grpc

TOKEN_ID, TOKEN_SECRET = "abcd1234", "s" * 24


class BusyJoins(security_pb2_grpc.JoinServiceServicer):
    """Answers the first `busy` joins RESOURCE_EXHAUSTED (retry after 10 ms, as the
    master's admission does), then signs the node's certificate."""

    def __init__(self, sign: Callable[[security_pb2.JoinNodeRequest], bytes], busy: int) -> None:
        self._sign = sign
        self.busy = busy
        self.calls = 0

    async def JoinNode(
        self, request: security_pb2.JoinNodeRequest, context: grpc.aio.ServicerContext
    ) -> security_pb2.JoinNodeResponse:
        self.calls += 1
        if self.calls <= self.busy:
            context.set_trailing_metadata(((RETRY_AFTER_METADATA, "0.01"),))
            await context.abort(grpc.StatusCode.RESOURCE_EXHAUSTED, "busy")
        return security_pb2.JoinNodeResponse(certificate_pem=self._sign(request))

    async def RenewNodeCertificate(
        self,
        request: security_pb2.RenewNodeCertificateRequest,
        context: grpc.aio.ServicerContext,
    ) -> security_pb2.RenewNodeCertificateResponse:
        await context.abort(grpc.StatusCode.UNIMPLEMENTED, "not in this test")
        raise AssertionError("unreachable")


async def _relay(target: int, connections: list[int]) -> asyncio.Server:
    """A TCP relay to 127.0.0.1:`target` that counts the connections made through it."""

    async def pump(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(ConnectionError):
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
        writer.close()

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        connections.append(1)
        up_reader, up_writer = await asyncio.open_connection("127.0.0.1", target)
        await asyncio.gather(pump(reader, up_writer), pump(up_reader, writer))

    return await asyncio.start_server(serve, "127.0.0.1", 0)


def test_a_join_retried_after_busy_answers_reuses_its_tls_connection(tmp_path: Path) -> None:
    now = dt.datetime.now(dt.UTC)
    pki = ensure_pki(tmp_path / "master", ["127.0.0.1"], now)

    def sign(request: security_pb2.JoinNodeRequest) -> bytes:
        cert = pki.ca.sign_node_csr(request.csr_pem, request.node_name, now, dt.timedelta(days=1))
        return cert_pem(cert)

    async def scenario() -> tuple[int, int, bool]:
        server = grpc.aio.server()
        joins = BusyJoins(sign, busy=3)
        security_pb2_grpc.add_JoinServiceServicer_to_server(joins, server)
        port = server.add_secure_port(
            "127.0.0.1:0",
            grpc.ssl_server_credentials(
                [(pki.server_key_pem, pki.server_chain_pem)],
                root_certificates=pki.client_roots_pem,
                require_client_auth=True,
            ),
        )
        await server.start()
        connections: list[int] = []
        relay = await _relay(port, connections)
        relay_port = relay.sockets[0].getsockname()[1]
        token = f"pinnace1.{TOKEN_ID}.{TOKEN_SECRET}.{ca_hash(pki.ca.cert)}"
        try:
            security = await asyncio.wait_for(
                prepare(f"127.0.0.1:{relay_port}", "n1", token, tmp_path / "agent", False), 60
            )
        finally:
            relay.close()
            await server.stop(None)
        return joins.calls, len(connections), security.creds is not None

    calls, connections, joined = asyncio.run(scenario())

    assert joined
    assert calls == 4  # three busy answers, then the certificate
    # One to fetch the pinned CA, one for the channel all four JoinNode calls went over
    # (it was two per attempt: eight).
    assert connections == 2
