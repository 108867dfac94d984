"""JoinService and TokenService: join tokens in, node certificates out.

Join (anonymous peer + token): admitted if fewer than a limit are in flight, else
refused with a time to come back (master/pki/admission.py); check the token
(master/pki/tokens.py), the CSR (one P-256 key, CN = the node name) and the
name's binding (master/pki/identities.py), then sign a node certificate, bind
the name to the CSR's key and count the token's use. Renew (the node's own
certificate, already authorised by master/api/auth.py): a CSR for the same name
and the same key gets a fresh certificate, so rotation never moves the binding.

Tokens (admin peers only): create (the secret is returned once and stored
hashed), list (never the secret), revoke. Every refusal is one sentence.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging

import grpc
from cryptography.hazmat.primitives.asymmetric import ec

from kernel.clock import Clock
from kernel.names import is_node_name
from master.api.auth import AuthInterceptor
from master.model import Node
from master.pki.admission import RETRY_AFTER_METADATA, Busy, JoinAdmission
from master.pki.ca import (
    CertificateAuthority,
    CsrError,
    cert_pem,
    parse_csr,
    spki_sha256,
    utc,
)
from master.pki.identities import join_refusal
from master.pki.registry import RegistryError, SecurityRegistry
from master.pki.tokens import MAX_DESCRIPTION, TokenRecord, parse_wire_token
from master.state import ClusterState
from protos import security_pb2, security_pb2_grpc

log = logging.getLogger(__name__)

MAX_TTL_SECONDS = 10 * 365 * 86400.0


def _key_sha256(public_key: object) -> str:
    if not isinstance(public_key, ec.EllipticCurvePublicKey):
        raise ValueError(f"expected an EC public key, got {type(public_key).__name__}")
    return spki_sha256(public_key).hex()


class JoinServicer(security_pb2_grpc.JoinServiceServicer):
    def __init__(
        self,
        ca: CertificateAuthority,
        registry: SecurityRegistry,
        state: ClusterState,
        auth: AuthInterceptor,
        clock: Clock,
        node_cert_lifetime: float,
        admission: JoinAdmission | None = None,
    ) -> None:
        # At most so many joins in flight; the rest come back later (master/pki/admission.py).
        self._admission = admission or JoinAdmission()
        self._ca = ca
        self._registry = registry
        self._state = state
        self._auth = auth
        self._clock = clock
        self._lifetime = dt.timedelta(seconds=node_cert_lifetime)

    async def JoinNode(
        self, request: security_pb2.JoinNodeRequest, context: grpc.aio.ServicerContext
    ) -> security_pb2.JoinNodeResponse:
        name = request.node_name
        started = self._clock.monotonic()
        # A caller that will have given up before the join could be answered is turned
        # away before any work (master/pki/admission.py).
        verdict = self._admission.admit(name, started, context.time_remaining())
        if isinstance(verdict, Busy):
            context.set_trailing_metadata(((RETRY_AFTER_METADATA, f"{verdict.retry_after:.2f}"),))
            await context.abort(grpc.StatusCode.RESOURCE_EXHAUSTED, verdict.message)
        joined = False
        try:
            reply = await self._join(request, context)
            joined = True
            self._admission.observe_join(self._clock.monotonic() - started)
            return reply
        finally:
            # A joined node holds its slot until it registers (node_servicer.py).
            if not joined:
                self._admission.finished(name, self._clock.monotonic())

    async def _join(
        self, request: security_pb2.JoinNodeRequest, context: grpc.aio.ServicerContext
    ) -> security_pb2.JoinNodeResponse:
        name = request.node_name
        if not is_node_name(name):
            await context.abort(
                grpc.StatusCode.INVALID_ARGUMENT,
                f"node name {name[:80]!r} is not a valid DNS-1123 subdomain",
            )
        token = parse_wire_token(request.token)
        if token is None:
            await context.abort(
                grpc.StatusCode.UNAUTHENTICATED,
                "the join token is malformed: create one with `pinnace token create`",
            )
            raise AssertionError("unreachable")
        refusal = self._registry.check(*token)
        if refusal:
            log.warning("join of node %s refused: %s", name, refusal)
            await context.abort(grpc.StatusCode.UNAUTHENTICATED, refusal)
        try:
            csr = parse_csr(request.csr_pem)
        except CsrError as e:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(e))
            raise AssertionError("unreachable") from e
        key = _key_sha256(csr.public_key())
        node = self._state.get("Node", name)
        ready = isinstance(node, Node) and node.status.ready
        refusal = join_refusal(self._registry.binding(name), key, ready)
        if refusal:
            log.warning("join of node %s refused: %s", name, refusal)
            await context.abort(grpc.StatusCode.ALREADY_EXISTS, refusal)
        cert = await self._sign(context, request.csr_pem, name)
        # Both are coalesced with the other joins in flight (master/pki/registry.py).
        await asyncio.gather(self._registry.bind(name, key), self._registry.count_use(token[0]))
        log.info("node %s joined with token %s (key sha256:%s)", name, token[0], key[:16])
        return security_pb2.JoinNodeResponse(certificate_pem=cert, ca_pem=self._ca.pem)

    async def RenewNodeCertificate(
        self,
        request: security_pb2.RenewNodeCertificateRequest,
        context: grpc.aio.ServicerContext,
    ) -> security_pb2.RenewNodeCertificateResponse:
        peer = self._auth.peer(context)
        try:
            csr = parse_csr(request.csr_pem)
        except CsrError as e:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(e))
            raise AssertionError("unreachable") from e
        if _key_sha256(csr.public_key()) != peer.key_sha256:
            await context.abort(
                grpc.StatusCode.PERMISSION_DENIED,
                "a renewal must keep the key of the certificate it is made with",
            )
        cert = await self._sign(context, request.csr_pem, peer.name)
        log.info("renewed the certificate of node %s", peer.name)
        return security_pb2.RenewNodeCertificateResponse(certificate_pem=cert, ca_pem=self._ca.pem)

    async def _sign(self, context: grpc.aio.ServicerContext, csr_pem: bytes, name: str) -> bytes:
        try:
            cert = self._ca.sign_node_csr(csr_pem, name, utc(self._clock.now()), self._lifetime)
        except CsrError as e:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(e))
            raise AssertionError("unreachable") from e
        return cert_pem(cert)


def token_info(record: TokenRecord) -> security_pb2.TokenInfo:
    return security_pb2.TokenInfo(
        id=record.id,
        created_at=record.created_at,
        expires_at=record.expires_at,
        uses=record.uses,
        revoked=bool(record.revoked_at),
        description=record.description,
    )


class TokenServicer(security_pb2_grpc.TokenServiceServicer):
    def __init__(self, ca_hash: str, registry: SecurityRegistry) -> None:
        self._ca_hash = ca_hash
        self._registry = registry

    async def CreateToken(
        self, request: security_pb2.CreateTokenRequest, context: grpc.aio.ServicerContext
    ) -> security_pb2.CreateTokenResponse:
        ttl = request.ttl_seconds
        if not 0 <= ttl <= MAX_TTL_SECONDS:
            await context.abort(
                grpc.StatusCode.INVALID_ARGUMENT,
                f"--ttl must be between 0 (never expires) and 10 years, got {ttl:g}s",
            )
        if len(request.description) > MAX_DESCRIPTION:
            await context.abort(
                grpc.StatusCode.INVALID_ARGUMENT,
                f"--description is longer than {MAX_DESCRIPTION} characters",
            )
        try:
            token, record = await self._registry.create_token(
                self._ca_hash, ttl, request.description
            )
        except RegistryError as e:
            await context.abort(grpc.StatusCode.RESOURCE_EXHAUSTED, str(e))
            raise AssertionError("unreachable") from e
        log.info("created join token %s", record.id)
        return security_pb2.CreateTokenResponse(token=str(token), info=token_info(record))

    async def ListTokens(
        self, request: security_pb2.ListTokensRequest, context: grpc.aio.ServicerContext
    ) -> security_pb2.ListTokensResponse:
        return security_pb2.ListTokensResponse(
            tokens=[token_info(r) for r in self._registry.tokens()]
        )

    async def RevokeToken(
        self, request: security_pb2.RevokeTokenRequest, context: grpc.aio.ServicerContext
    ) -> security_pb2.RevokeTokenResponse:
        record = await self._registry.revoke(request.id)
        if record is None:
            await context.abort(
                grpc.StatusCode.NOT_FOUND, f"join token {request.id[:40]!r} not found"
            )
            raise AssertionError("unreachable")
        log.info("revoked join token %s", record.id)
        return security_pb2.RevokeTokenResponse(token=token_info(record))
