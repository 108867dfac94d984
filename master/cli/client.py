"""The CLI's connection to the master and the translation of gRPC failures.

Every failure the user can cause or meet becomes one sentence (`CliError`): an
unreachable master (after retrying for a few seconds, since a master that is
restarting comes back quickly), a rejected manifest (the master's own sentence,
which names file, document and field), an object that does not exist.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import TypeVar

import grpc

from protos import cluster_pb2_grpc

DEFAULT_MASTER = "127.0.0.1:7400"
CONNECT_WAIT_SECONDS = 4.0
CALL_TIMEOUT_SECONDS = 30.0

T = TypeVar("T")


class CliError(Exception):
    """A user-facing failure: printed as one line, exit status 1."""


def master_address(flag: str | None) -> str:
    return flag or os.environ.get("PINNACE_MASTER") or DEFAULT_MASTER


class MasterClient:
    def __init__(self, address: str) -> None:
        self.address = address
        self._channel = grpc.insecure_channel(
            address, options=[("grpc.max_receive_message_length", 64 * 1024 * 1024)]
        )
        self.stub = cluster_pb2_grpc.ClusterServiceStub(self._channel)

    def close(self) -> None:
        self._channel.close()

    def call(self, fn: Callable[..., T], request: object, timeout: float | None = None) -> T:
        """One unary call; waits briefly for an unreachable master, then explains."""
        try:
            self._wait_until_connected()
            return fn(request, timeout=timeout or CALL_TIMEOUT_SECONDS, wait_for_ready=True)
        except grpc.RpcError as e:
            raise self.translate(e) from None

    def _wait_until_connected(self) -> None:
        try:
            grpc.channel_ready_future(self._channel).result(timeout=CONNECT_WAIT_SECONDS)
        except grpc.FutureTimeoutError:
            raise self.unreachable() from None

    def unreachable(self) -> CliError:
        return CliError(
            f"cannot reach the pinnace master at {self.address}: is `pinnace master` running? "
            f"(set the address with --master or PINNACE_MASTER)"
        )

    def translate(self, e: grpc.RpcError) -> CliError:
        code = e.code() if hasattr(e, "code") else None
        details = e.details() if hasattr(e, "details") else str(e)
        if code in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED):
            return self.unreachable()
        if code == grpc.StatusCode.NOT_FOUND:
            return CliError(f"Error from server (NotFound): {details}")
        if code in (grpc.StatusCode.INVALID_ARGUMENT, grpc.StatusCode.FAILED_PRECONDITION):
            return CliError(f"error: {details}")
        if code == grpc.StatusCode.RESOURCE_EXHAUSTED:
            return CliError(f"error: the request is too large for the master: {details}")
        return CliError(f"error from the master ({code.name if code else 'unknown'}): {details}")
