"""Writes on any master: a follower forwards the cluster API's writes to the leader.

With several masters (`--leader-elect`) only the leader writes. A client may
still call any of them: a follower passes each write call it receives — the
request's bytes as they came — to the leader over one kept channel, and
returns the leader's answer (its reply bytes, or its status code and
sentence) as its own. Calls that need an agent's session (logs, exec: streams)
go the same way, message by message, since agents keep their sessions with the
leader. The caller was authorised here first (the interceptor
runs inside AuthInterceptor); the follower speaks to the leader as the
cluster's admin, an identity every master holds (master/pki/shared.py).

Decided by `forward_target` (pure): only the calls in FORWARDED, only while
this master may not write and knows another leader, and never a call that was
itself forwarded (metadata `pinnace-forwarded`): two masters that each believe
the other leads answer with a refusal instead of passing a call back and forth.
A master that knows no leader yet (just started, or an election under way) first
waits a moment for one (ClusterState.wait_for_a_writer) rather than refuse.
A leader that cannot be reached is UNAVAILABLE with one sentence, so a client
with several masters moves on to the next.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import grpc

from kernel.limits import MAX_MASTER_MESSAGE_BYTES
from master.state import ClusterState

log = logging.getLogger(__name__)

FORWARDED_METADATA = "pinnace-forwarded"
# The cluster API's calls that change state, and those that need the agents' sessions,
# which only the leader holds: usage (top), container logs and exec (streams).
FORWARDED = frozenset(
    f"/pinnace.v1.ClusterService/{m}"
    for m in (
        "ApplyManifests",
        "DeleteObjects",
        "ScaleDeployment",
        "RollbackDeployment",
        "CordonNode",
        "DrainNode",
        "GetUsage",
        "StreamLogs",
        "Exec",
    )
)
DEFAULT_TIMEOUT_S = 30.0


def forward_target(method: str, writable: bool, leader: str, forwarded: bool) -> str:
    """The leader's address when this call goes there, else "" (answer it here)."""
    if method not in FORWARDED or writable or not leader or forwarded:
        return ""
    return leader


# (leader address) -> a channel to it; made with the admin identity (or plaintext).
ChannelFactory = Callable[[str], grpc.aio.Channel]


def admin_channels(
    ca_pem: bytes | None, key_pem: bytes | None, cert_pem: bytes | None
) -> ChannelFactory:
    options = [
        ("grpc.max_receive_message_length", 64 * 1024 * 1024),
        ("grpc.max_send_message_length", MAX_MASTER_MESSAGE_BYTES),
    ]

    def make(address: str) -> grpc.aio.Channel:
        if ca_pem is None:
            return grpc.aio.insecure_channel(address, options=options)
        creds = grpc.ssl_channel_credentials(ca_pem, key_pem, cert_pem)
        return grpc.aio.secure_channel(address, creds, options=options)

    return make


class ForwardingInterceptor(grpc.aio.ServerInterceptor):  # type: ignore[misc]
    def __init__(self, state: ClusterState, channels: ChannelFactory) -> None:
        self._state = state
        self._channels = channels
        self._channel: tuple[str, grpc.aio.Channel] | None = None

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler]],
        details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler:
        handler = await continuation(details)
        method: str = details.method
        if handler is None or method not in FORWARDED:
            return handler
        forwarded = any(k == FORWARDED_METADATA for k, _ in details.invocation_metadata or ())

        def target() -> str:
            return forward_target(
                method, self._state.writable, self._state.leader_address(), forwarded
            )

        parse, serialize = handler.request_deserializer, handler.response_serializer

        async def parsed(raw: bytes, context: grpc.aio.ServicerContext) -> Any:
            try:
                return parse(raw) if parse is not None else raw
            except Exception as e:  # the same answer AuthInterceptor's guard gives
                await context.abort(
                    grpc.StatusCode.INVALID_ARGUMENT,
                    f"the request does not decode: {str(e).split(':', 1)[0][:200]}",
                )

        def reply_bytes(reply: Any) -> bytes:
            if isinstance(reply, bytes):
                return reply
            return bytes(serialize(reply)) if serialize is not None else reply

        # Raw bytes in and out: a forwarded call is passed on without being parsed.
        if handler.unary_unary is not None:
            local = handler.unary_unary

            async def unary(raw: bytes, context: grpc.aio.ServicerContext) -> Any:
                if not forwarded:
                    await self._state.wait_for_a_writer()
                leader = target()
                if leader:
                    return await self._forward(leader, method, raw, context)
                return await local(await parsed(raw, context), context)

            return grpc.unary_unary_rpc_method_handler(
                unary, request_deserializer=None, response_serializer=reply_bytes
            )
        if handler.unary_stream is not None:
            local_stream = handler.unary_stream

            async def unary_stream(raw: bytes, context: grpc.aio.ServicerContext) -> Any:
                if not forwarded:
                    await self._state.wait_for_a_writer()
                leader = target()
                if leader:
                    call = self._channel_to(leader).unary_stream(method)(
                        raw, metadata=((FORWARDED_METADATA, "1"),)
                    )
                    async for reply in self._relay(leader, call, context):
                        yield reply
                    return
                async for reply in local_stream(await parsed(raw, context), context):
                    yield reply

            return grpc.unary_stream_rpc_method_handler(
                unary_stream, request_deserializer=None, response_serializer=reply_bytes
            )
        if handler.stream_stream is not None:
            local_bidi = handler.stream_stream

            async def bidi(
                requests: AsyncIterator[bytes], context: grpc.aio.ServicerContext
            ) -> Any:
                leader = target()
                if leader:
                    call = self._channel_to(leader).stream_stream(method)(
                        requests, metadata=((FORWARDED_METADATA, "1"),)
                    )
                    async for reply in self._relay(leader, call, context):
                        yield reply
                    return

                async def messages() -> AsyncIterator[Any]:
                    async for raw in requests:
                        yield await parsed(raw, context)

                async for reply in local_bidi(messages(), context):
                    yield reply

            return grpc.stream_stream_rpc_method_handler(
                bidi, request_deserializer=None, response_serializer=reply_bytes
            )
        return handler

    async def _relay(
        self, leader: str, call: Any, context: grpc.aio.ServicerContext
    ) -> AsyncIterator[bytes]:
        """The leader's stream of replies, as ours; its failure as ours; cancelled with us."""
        try:
            async for reply in call:
                yield reply
        except grpc.aio.AioRpcError as e:
            await context.abort(e.code(), _passed_on(leader, e))
        finally:
            call.cancel()

    def _channel_to(self, leader: str) -> grpc.aio.Channel:
        if self._channel is not None and self._channel[0] == leader:
            return self._channel[1]
        old = self._channel
        channel = self._channels(leader)
        self._channel = (leader, channel)
        if old is not None:
            # Calls still on the old channel finish: close it once they could have.
            _close_later(old[1])
        return channel

    async def _forward(
        self, leader: str, method: str, raw: bytes, context: grpc.aio.ServicerContext
    ) -> bytes:
        remaining = context.time_remaining()
        timeout = DEFAULT_TIMEOUT_S if remaining is None else max(0.05, remaining)
        call = self._channel_to(leader).unary_unary(method)
        try:
            reply: bytes = await call(
                raw,
                timeout=timeout,
                metadata=((FORWARDED_METADATA, "1"),),
                wait_for_ready=False,
            )
        except grpc.aio.AioRpcError as e:
            await context.abort(e.code(), _passed_on(leader, e))
            raise AssertionError("unreachable") from None  # abort raises
        return reply


def _passed_on(leader: str, e: grpc.aio.AioRpcError) -> str:
    """The leader's sentence, or one saying the leader could not be reached."""
    code, message = e.code(), e.details() or ""
    if code in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED) and (
        not message.startswith("nothing was changed")
    ):
        return f"the leader at {leader} did not take the call ({code.name}: {message})"
    return message


def _close_later(channel: grpc.aio.Channel) -> None:
    import asyncio

    async def close() -> None:
        await asyncio.sleep(DEFAULT_TIMEOUT_S)
        await channel.close()

    task = asyncio.get_running_loop().create_task(close())
    _closing.add(task)
    task.add_done_callback(_closing.discard)


_closing: set[Any] = set()
