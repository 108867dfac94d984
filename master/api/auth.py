"""Authorisation for every gRPC call: who the peer is (its certificate) and what it may do.

The master requires a client certificate on every TLS connection (see
master/pki/anonymous.py for why that does not lock joining agents out). A server
interceptor wraps each method's handler; before the servicer runs, the wrapper
reads the peer's verified certificate from `context.auth_context()` and maps it
to a `Peer`:

- signed by the cluster CA, O=pinnace:admins  -> admin
- signed by the cluster CA, O=pinnace:nodes   -> node CN
- anything else (the anonymous bootstrap cert) -> anonymous

and checks it against the method's rule:

- ClusterService/*, TokenService/*       admin only;
- NodeService/RegisterNode               the node named in the request, with its
                                         bound key (master/pki/identities.py);
- NodeService/StreamSession              the node named in the SessionHello (the
                                         first message is read here, then handed on);
- JoinService/RenewNodeCertificate       a node, with its bound key;
- JoinService/JoinNode                   anyone (the servicer checks the token);
- any other method                       nobody.

A refusal is PERMISSION_DENIED (UNAUTHENTICATED for a missing identity) with one
sentence. Parsed certificates are cached by their PEM, so a node's heartbeats
cost nothing extra: the stream is authorised once, at its start.

The same wrappers guard decoding: a request whose bytes are not a valid message
of its type becomes INVALID_ARGUMENT with one sentence (gRPC itself would answer
UNKNOWN and log a traceback per message, an easy way to flood the master's log).
With `--insecure` (ca=None) only that guard runs: there is no one to authorise.
"""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Literal

import grpc
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from master.pki.ca import ADMIN_ORG, NODE_ORG, CertificateAuthority, common_name, organization
from master.pki.identities import session_refusal
from master.pki.registry import SecurityRegistry
from protos import node_pb2

Role = Literal["admin", "node", "anonymous"]
Rule = Literal["admin", "register", "session", "node", "anyone", "nobody"]

_MAX_CACHE = 4096


@dataclass(frozen=True, slots=True)
class Peer:
    role: Role
    # The node name (role node) or certificate CN.
    name: str = ""
    # hex SHA-256 of the certificate key's SubjectPublicKeyInfo.
    key_sha256: str = ""


ANONYMOUS = Peer("anonymous")
# What a plaintext (--insecure) master lets every caller be.
UNCHECKED = Peer("admin", "insecure")


@dataclass(frozen=True, slots=True)
class Malformed:
    """Stands in for a request whose bytes did not decode."""

    reason: str


def _tolerant(deserializer: Callable[[bytes], Any] | None) -> Callable[[bytes], Any] | None:
    if deserializer is None:
        return None

    def parse(data: bytes) -> Any:
        try:
            return deserializer(data)
        except Exception as e:  # DecodeError and whatever else a decoder raises
            return Malformed(str(e).split(":", 1)[0][:200])

    return parse


async def _refuse_malformed(context: grpc.aio.ServicerContext, request: Any) -> None:
    if isinstance(request, Malformed):
        await context.abort(
            grpc.StatusCode.INVALID_ARGUMENT, f"the request does not decode: {request.reason}"
        )


def rule_for(method: str) -> Rule:
    service = method.lstrip("/").partition("/")[0]
    if service in ("pinnace.v1.ClusterService", "pinnace.v1.TokenService"):
        return "admin"
    if method == "/pinnace.v1.NodeService/RegisterNode":
        return "register"
    if method == "/pinnace.v1.NodeService/StreamSession":
        return "session"
    if method == "/pinnace.v1.JoinService/JoinNode":
        return "anyone"
    if method == "/pinnace.v1.JoinService/RenewNodeCertificate":
        return "node"
    return "nobody"


def peer_from_certificate(pem: bytes, ca: CertificateAuthority) -> Peer:
    try:
        cert = x509.load_pem_x509_certificate(pem)
    except ValueError:
        return ANONYMOUS
    if not ca.issued(cert):
        return ANONYMOUS
    spki = cert.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    key = hashlib.sha256(spki).hexdigest()
    org = organization(cert.subject)
    if org == ADMIN_ORG:
        return Peer("admin", common_name(cert.subject), key)
    if org == NODE_ORG:
        return Peer("node", common_name(cert.subject), key)
    return ANONYMOUS


class AuthInterceptor(grpc.aio.ServerInterceptor):  # type: ignore[misc]
    def __init__(self, ca: CertificateAuthority | None, registry: SecurityRegistry | None) -> None:
        self._ca = ca
        self._registry = registry
        self._cache: dict[bytes, Peer] = {}

    def peer(self, context: grpc.aio.ServicerContext) -> Peer:
        if self._ca is None:
            return UNCHECKED
        pems = context.auth_context().get("x509_pem_cert") or []
        if not pems:
            return ANONYMOUS
        pem = pems[0]
        peer = self._cache.get(pem)
        if peer is None:
            if len(self._cache) >= _MAX_CACHE:
                self._cache.clear()
            peer = self._cache[pem] = peer_from_certificate(pem, self._ca)
        return peer

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler]],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler:
        handler = await continuation(handler_call_details)
        if handler is None:
            return handler
        method: str = handler_call_details.method
        rule = rule_for(method)
        if handler.unary_unary is not None:
            return grpc.unary_unary_rpc_method_handler(
                self._guard_unary(handler.unary_unary, rule, method),
                request_deserializer=_tolerant(handler.request_deserializer),
                response_serializer=handler.response_serializer,
            )
        if handler.unary_stream is not None:
            return grpc.unary_stream_rpc_method_handler(
                self._guard_unary_stream(handler.unary_stream, rule, method),
                request_deserializer=_tolerant(handler.request_deserializer),
                response_serializer=handler.response_serializer,
            )
        if handler.stream_stream is not None:
            return grpc.stream_stream_rpc_method_handler(
                self._guard_stream(handler.stream_stream, rule, method),
                request_deserializer=_tolerant(handler.request_deserializer),
                response_serializer=handler.response_serializer,
            )
        # No stream-unary methods exist; refuse rather than pass one unchecked.
        return grpc.stream_unary_rpc_method_handler(
            self._refuse_stream_unary(method),
            request_deserializer=_tolerant(handler.request_deserializer),
            response_serializer=handler.response_serializer,
        )

    # -- wrappers ---------------------------------------------------------------------

    def _guard_unary(self, behavior: Any, rule: Rule, method: str) -> Any:
        async def guarded(request: Any, context: grpc.aio.ServicerContext) -> Any:
            peer = await self.authorize(context, rule, method)
            await _refuse_malformed(context, request)
            if rule == "register":
                await self._require_node_name(context, peer, request.node.name)
            return await behavior(request, context)

        return guarded

    def _guard_unary_stream(self, behavior: Any, rule: Rule, method: str) -> Any:
        async def guarded(request: Any, context: grpc.aio.ServicerContext) -> AsyncIterator[Any]:
            await self.authorize(context, rule, method)
            await _refuse_malformed(context, request)
            async for response in behavior(request, context):
                yield response

        return guarded

    def _guard_stream(self, behavior: Any, rule: Rule, method: str) -> Any:
        async def guarded(
            requests: AsyncIterator[Any], context: grpc.aio.ServicerContext
        ) -> AsyncIterator[Any]:
            peer = await self.authorize(context, rule, method)
            first: Any = None
            if rule == "session":
                first = await anext(aiter(requests), None)
                if isinstance(first, node_pb2.AgentMessage) and first.WhichOneof("body") == "hello":
                    await self._require_node_name(context, peer, first.hello.node_name)

            async def replay() -> AsyncIterator[Any]:
                if first is not None:
                    await _refuse_malformed(context, first)
                    yield first
                async for message in requests:
                    await _refuse_malformed(context, message)
                    yield message

            async for response in behavior(replay(), context):
                yield response

        return guarded

    def _refuse_stream_unary(self, method: str) -> Any:
        async def refuse(requests: AsyncIterator[Any], context: grpc.aio.ServicerContext) -> Any:
            await context.abort(grpc.StatusCode.PERMISSION_DENIED, f"{method} is not allowed")

        return refuse

    # -- decisions --------------------------------------------------------------------

    async def authorize(self, context: grpc.aio.ServicerContext, rule: Rule, method: str) -> Peer:
        peer = self.peer(context)
        if self._ca is None or self._registry is None:
            return peer
        short = method.rsplit("/", 2)[-2].rsplit(".", 1)[-1] + "/" + method.rsplit("/", 1)[-1]
        if rule == "anyone":
            return peer
        if rule == "admin":
            if peer.role == "admin":
                return peer
            if peer.role == "node":
                await context.abort(
                    grpc.StatusCode.PERMISSION_DENIED,
                    f"{short} needs an admin certificate; node {peer.name!r} presented its "
                    f"node certificate (use the admin config the master wrote, pinnace.conf)",
                )
            await context.abort(
                grpc.StatusCode.UNAUTHENTICATED,
                f"{short} needs an admin certificate from this cluster (pinnace.conf); "
                f"the client presented none",
            )
        if rule in ("register", "session", "node"):
            if peer.role != "node":
                who = "an admin certificate" if peer.role == "admin" else "no node certificate"
                await context.abort(
                    grpc.StatusCode.PERMISSION_DENIED
                    if peer.role == "admin"
                    else grpc.StatusCode.UNAUTHENTICATED,
                    f"{short} is for node agents; the client presented {who} "
                    f"(an agent joins with `pinnace agent --token TOKEN`)",
                )
            refusal = session_refusal(self._registry.binding(peer.name), peer.name, peer.key_sha256)
            if refusal:
                await context.abort(grpc.StatusCode.PERMISSION_DENIED, refusal)
            return peer
        await context.abort(grpc.StatusCode.PERMISSION_DENIED, f"{method} is not allowed")
        raise AssertionError("unreachable")  # context.abort raises

    async def _require_node_name(
        self, context: grpc.aio.ServicerContext, peer: Peer, name: str
    ) -> None:
        if self._registry is None:
            return
        if name != peer.name:
            await context.abort(
                grpc.StatusCode.PERMISSION_DENIED,
                f"the certificate of node {peer.name!r} may not act for node {name[:80]!r}",
            )
        if self._registry.binding(name) is None:
            # A deleted node's agent (or any holder of a valid certificate for the
            # name) claims it again on registering.
            await self._registry.bind(name, peer.key_sha256)
