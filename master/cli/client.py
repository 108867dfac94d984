"""The CLI's connection to the master and the translation of gRPC failures.

Every failure the user can cause or meet becomes one sentence (`CliError`): an
unreachable master (after retrying for a few seconds, since a master that is
restarting comes back quickly), a rejected manifest (the master's own sentence,
which names file, document and field), an object that does not exist, missing
or foreign credentials. The channel is TLS with the client certificate that
master/cli/config.py finds (plaintext only with --insecure, to loopback).
"""

from __future__ import annotations

import socket
from collections.abc import Callable, Iterable, Iterator
from typing import TYPE_CHECKING, Any, TypeVar

import grpc

from master.cli import config, failures
from master.cli.config import DEFAULT_MASTER, CredentialsError
from master.cli.errors import CliError
from master.cli.failures import REFUSED

if TYPE_CHECKING:
    from protos.cluster_pb2_grpc import ClusterServiceStub

__all__ = ["DEFAULT_MASTER", "REFUSED", "CliError", "MasterClient", "master_address"]
# After the connect wait, how long a call still running may take to show its channel is
# connected (a long call, not an unreachable master).
READY_CHECK_SECONDS = 0.5
CALL_TIMEOUT_SECONDS = 30.0

T = TypeVar("T")


def _passes_on(e: grpc.RpcError) -> bool:
    """Whether another master may take this call: this one is unreachable or a follower."""
    code = e.code()
    return code is not None and failures.passes_on(code.name)


def master_address(flag: str | None) -> str:
    """--master, else $PINNACE_MASTER, else the credentials' server, else 127.0.0.1:7400."""
    try:
        return config.master_address(flag)
    except CredentialsError as e:
        raise CliError(str(e)) from None


class MasterClient:
    """One master, or several (`--master a:7400,b:7400,c:7400`): a call that cannot reach
    its master, or that a follower refuses, is sent to the next one."""

    def __init__(self, address: str) -> None:
        # TLS with the credentials master/cli/config.py finds (plaintext with --insecure).
        try:
            self.addresses, self.credentials, self._connect_wait = config.masters(address)
        except CredentialsError as e:
            raise CliError(str(e)) from None
        self._turn = 0
        self.address = self.addresses[0]
        self._open(self.address)

    def _open(self, address: str) -> None:
        self.address = address
        options = [("grpc.max_receive_message_length", 64 * 1024 * 1024)]
        creds = self.credentials.config
        if self.credentials.insecure:
            self._channel = grpc.insecure_channel(address, options=options)
        elif creds is None:
            if self._tcp_reachable():
                raise CliError(config.no_credentials(address))
            raise self.unreachable()
        else:
            tls = grpc.ssl_channel_credentials(creds.ca_pem, creds.key_pem, creds.cert_pem)
            self._channel = grpc.secure_channel(address, tls, options=options)
        self._stub: ClusterServiceStub | None = None

    @property
    def stub(self) -> ClusterServiceStub:
        """The generated stub on the current master's channel, made when first asked for:
        it loads the protobuf runtime and every message of the service, which `apply`
        (master/cli/apply_wire.py) does without."""
        if self._stub is None:
            from protos.cluster_pb2_grpc import ClusterServiceStub

            self._stub = ClusterServiceStub(self._channel)
        return self._stub

    def _next_master(self) -> None:
        self._channel.close()
        self._turn += 1
        self._open(self.addresses[self._turn % len(self.addresses)])

    @property
    def channel(self) -> grpc.Channel:
        return self._channel

    def _tcp_reachable(self) -> bool:
        host, _, port = self.address.rpartition(":")
        try:
            with socket.create_connection((host.strip("[]"), int(port)), timeout=2.0):
                return True
        except (OSError, ValueError):
            return False

    def close(self) -> None:
        self._channel.close()

    def call(self, fn: Callable[..., T], request: object, timeout: float | None = None) -> T:
        """One unary call; waits briefly for an unreachable master, then explains. With
        several masters, one that is unreachable or refuses (a follower) passes the call on."""
        # The method's name on the stub, to make the same call on the next master's stub.
        method = next((k for k, v in vars(self.stub).items() if v is fn), None)

        def make(first: bool) -> Callable[..., T]:
            return fn if first or method is None else getattr(self.stub, method)

        return self._each_master(make, method is not None, request, timeout)

    def call_method(
        self,
        path: str,
        serialize: Callable[[Any], bytes],
        deserialize: Callable[[bytes], T],
        request: object,
        timeout: float | None = None,
    ) -> T:
        """`call` for a method named by its path, with its own (de)serializers instead of
        the generated stub's (`apply`: master/cli/apply_wire.py)."""

        def make(first: bool) -> Callable[..., T]:
            method: Callable[..., T] = self._channel.unary_unary(
                path, request_serializer=serialize, response_deserializer=deserialize
            )
            return method

        return self._each_master(make, True, request, timeout)

    def _each_master(
        self,
        make: Callable[[bool], Callable[..., T]],
        passes_on: bool,
        request: object,
        timeout: float | None,
    ) -> T:
        """The call `make(first)` gives on the current master's channel; when `passes_on`,
        a master that is unreachable or refuses passes it on to the next one."""
        for attempt in range(len(self.addresses)):
            last = attempt == len(self.addresses) - 1 or not passes_on
            try:
                return self._send(make(attempt == 0), request, timeout or CALL_TIMEOUT_SECONDS)
            except grpc.RpcError as e:
                if last or not _passes_on(e):
                    raise self.translate(e) from None
            except CliError:
                if last:
                    raise
            self._next_master()
        raise AssertionError("unreachable")

    def stream(self, fn: Callable[..., Iterable[T]], request: object) -> Iterator[T]:
        """A server-streaming call's messages, with failures explained like `call`'s."""
        try:
            self._wait_until_connected()
            yield from fn(request, wait_for_ready=True)
        except grpc.RpcError as e:
            raise self.translate(e) from None

    def _send(self, call: Callable[..., T], request: object, timeout: float) -> T:
        """The call sent at once, queued by gRPC until the channel connects; a master that has
        not connected within the connect wait is unreachable.

        Why not wait for the channel first (`channel_ready_future`), as the streams do: that
        leaves gRPC's connectivity poller in a watch of up to 0.2 s, and closing the channel
        waits for it: 0.2 s added to every command (apply -> 3 running, issue 15)."""
        multi: Any = call  # a stub's UnaryUnaryMultiCallable; its `future` does not block
        future = multi.future(request, timeout=timeout, wait_for_ready=True)
        try:
            done: T = future.result(timeout=self._connect_wait)
            return done
        except grpc.FutureTimeoutError:
            pass
        # Still running after the connect wait: a long call, or a master never reached.
        try:
            grpc.channel_ready_future(self._channel).result(timeout=READY_CHECK_SECONDS)
        except grpc.FutureTimeoutError:
            future.cancel()
            raise self.unreachable() from None
        late: T = future.result()
        return late

    def _wait_until_connected(self) -> None:
        try:
            grpc.channel_ready_future(self._channel).result(timeout=self._connect_wait)
        except grpc.FutureTimeoutError:
            raise self.unreachable() from None

    def unreachable(self) -> CliError:
        tls_failed = not self.credentials.insecure and self._tcp_reachable()
        return CliError(
            failures.unreachable_sentence(
                self.address, self.addresses, self.credentials.source, tls_failed
            )
        )

    def translate(self, e: grpc.RpcError) -> CliError:
        code = e.code() if hasattr(e, "code") else None
        details = e.details() if hasattr(e, "details") else str(e)
        sentence = failures.status_sentence(code.name if code else "", details or "", self.address)
        return self.unreachable() if sentence is None else CliError(sentence)
