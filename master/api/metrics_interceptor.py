"""Times every gRPC call the master serves, by service, method and status code.

The outermost server interceptor, so a call refused by authentication is timed and counted
with its code too. The code is what the handler left on its context (an abort or
set_code), OK when it returned normally, CANCELLED when the client went away, and UNKNOWN
for any other exception (what gRPC itself reports then). A stream is timed over its whole
life: an agent's session shows up as one long call, its count as sessions ended.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import grpc

from master.metrics.series import GRPC_HANDLING


def _names(method: str) -> tuple[str, str]:
    # "/pinnace.v1.ClusterService/Apply" -> ("pinnace.v1.ClusterService", "Apply")
    service, _, name = method.lstrip("/").rpartition("/")
    return service or "unknown", name or "unknown"


def _code(context: grpc.aio.ServicerContext, error: BaseException | None) -> str:
    if isinstance(error, asyncio.CancelledError | GeneratorExit):
        return "CANCELLED"
    code = context.code()
    if isinstance(code, grpc.StatusCode):
        return str(code.name)
    if isinstance(code, int):
        return next((str(c.name) for c in grpc.StatusCode if c.value[0] == code), str(code))
    if error is not None and not isinstance(error, grpc.aio.AbortError):
        return "UNKNOWN"
    return "OK"


class MetricsInterceptor(grpc.aio.ServerInterceptor):  # type: ignore[misc]
    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler]],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler:
        handler = await continuation(handler_call_details)
        if handler is None:
            return handler
        service, method = _names(handler_call_details.method)
        kinds = (
            ("unary_unary", grpc.unary_unary_rpc_method_handler, self._unary),
            ("unary_stream", grpc.unary_stream_rpc_method_handler, self._streaming),
            ("stream_unary", grpc.stream_unary_rpc_method_handler, self._unary),
            ("stream_stream", grpc.stream_stream_rpc_method_handler, self._streaming),
        )
        for attribute, make, wrap in kinds:
            behavior = getattr(handler, attribute)
            if behavior is not None:
                return make(
                    wrap(behavior, service, method),
                    request_deserializer=handler.request_deserializer,
                    response_serializer=handler.response_serializer,
                )
        return handler

    @staticmethod
    def _unary(behavior: Any, service: str, method: str) -> Any:
        async def timed(request: Any, context: grpc.aio.ServicerContext) -> Any:
            start = time.perf_counter()
            error: BaseException | None = None
            try:
                return await behavior(request, context)
            except BaseException as exc:
                error = exc
                raise
            finally:
                code = _code(context, error)
                GRPC_HANDLING.labels(service, method, code).observe(time.perf_counter() - start)

        return timed

    @staticmethod
    def _streaming(behavior: Any, service: str, method: str) -> Any:
        async def timed(request: Any, context: grpc.aio.ServicerContext) -> AsyncIterator[Any]:
            start = time.perf_counter()
            error: BaseException | None = None
            try:
                async for response in behavior(request, context):
                    yield response
            except BaseException as exc:
                error = exc
                raise
            finally:
                code = _code(context, error)
                GRPC_HANDLING.labels(service, method, code).observe(time.perf_counter() - start)

        return timed
