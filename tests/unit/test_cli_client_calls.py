"""The CLI's unary calls against a real gRPC server, in-process (master/cli/client.py).

A reachable master is called without waiting for the channel first: that wait
(`grpc.channel_ready_future`) left gRPC's connectivity poller in a watch of up to 0.2 s,
which closing the channel then waited out: 0.2 s on every command (issue 15's apply -> 3
running). The connect wait still applies to a master that does not answer, and a call
slower than that wait on a connected channel still gets its answer.
"""

from __future__ import annotations

import socket
import threading
from collections.abc import Callable, Iterator
from concurrent import futures
from pathlib import Path
from typing import Any

import grpc
import pytest

from master.cli import apply_wire, config
from master.cli import client as client_module
from master.cli.apply import read_sources
from master.cli.client import CliError, MasterClient
from protos import cluster_pb2

SERVICE = "pinnace.v1.ClusterService"


class Objects:
    """GetObjects answers an empty list once `release` is set (at once by default); the
    service's other methods are not offered."""

    def __init__(self) -> None:
        self.release = threading.Event()
        self.release.set()
        self.asked = threading.Event()

    def GetObjects(
        self, request: cluster_pb2.GetObjectsRequest, context: grpc.ServicerContext
    ) -> cluster_pb2.GetObjectsResponse:
        self.asked.set()
        if not self.release.wait(30):
            context.abort(grpc.StatusCode.INTERNAL, "the test never released the call")
        return cluster_pb2.GetObjectsResponse()


def _serve(
    method: str,
    behaviour: Callable[[Any, grpc.ServicerContext], Any],
    read: Callable[[bytes], Any],
    write: Callable[[Any], bytes],
) -> tuple[grpc.Server, int]:
    """A started in-process gRPC server offering the service's one `method` on a free
    loopback port; the caller stops it."""
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
    handler = grpc.unary_unary_rpc_method_handler(
        behaviour, request_deserializer=read, response_serializer=write
    )
    server.add_generic_rpc_handlers(
        (grpc.method_handlers_generic_handler(SERVICE, {method: handler}),)
    )
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    return server, port


@pytest.fixture
def master() -> Iterator[tuple[str, Objects]]:
    servicer = Objects()
    server, port = _serve(
        "GetObjects",
        servicer.GetObjects,
        cluster_pb2.GetObjectsRequest.FromString,
        cluster_pb2.GetObjectsResponse.SerializeToString,
    )
    config.select(None, insecure=True)
    try:
        yield f"127.0.0.1:{port}", servicer
    finally:
        config.select(None, insecure=False)
        server.stop(grace=None)


class ReadySpy:
    """Records each `channel_ready_future(...).result(timeout)` the client makes, and runs
    `on_wait` (if set) before it."""

    def __init__(self) -> None:
        self.waits: list[float | None] = []
        self.on_wait: Callable[[], None] | None = None
        self._real = grpc.channel_ready_future

    def __call__(self, channel: grpc.Channel) -> Any:
        future = self._real(channel)
        result = future.result

        def recorded(timeout: float | None = None) -> Any:
            self.waits.append(timeout)
            if self.on_wait is not None:
                self.on_wait()
            return result(timeout=timeout)

        future.result = recorded
        return future


@pytest.fixture
def ready_spy(monkeypatch: pytest.MonkeyPatch) -> ReadySpy:
    spy = ReadySpy()
    monkeypatch.setattr(grpc, "channel_ready_future", spy)
    return spy


def test_a_reachable_master_is_called_without_waiting_for_the_channel_first(
    master: tuple[str, Objects], ready_spy: ReadySpy
) -> None:
    address, _ = master
    client = MasterClient(address)
    try:
        reply = client.call(client.stub.GetObjects, cluster_pb2.GetObjectsRequest(kind="Node"))
    finally:
        client.close()

    assert list(reply.objects) == []
    # The wait left gRPC's connectivity poller running, and close() waited for it.
    assert ready_spy.waits == []


def test_a_call_slower_than_the_connect_wait_still_gets_its_answer(
    master: tuple[str, Objects], ready_spy: ReadySpy
) -> None:
    address, servicer = master
    servicer.release.clear()
    client = MasterClient(address)
    client._connect_wait = 0.05
    # The master answers only once the client has given up waiting for the call alone and
    # asks whether the channel is connected (it is: the call is just slow).
    ready_spy.on_wait = servicer.release.set
    try:
        reply = client.call(client.stub.GetObjects, cluster_pb2.GetObjectsRequest(kind="Node"))
    finally:
        client.close()

    assert servicer.asked.is_set()
    assert list(reply.objects) == []
    assert ready_spy.waits == [client_module.READY_CHECK_SECONDS]


def test_a_master_that_refuses_connections_is_one_sentence_after_the_connect_wait() -> None:
    # A port nothing listens on: bound, so no one else takes it during the test.
    with socket.socket() as held:
        held.bind(("127.0.0.1", 0))
        address = f"127.0.0.1:{held.getsockname()[1]}"
        config.select(None, insecure=True)
        try:
            client = MasterClient(address)
            client._connect_wait = 0.2
            with pytest.raises(CliError, match=f"cannot reach the pinnace master at {address}"):
                client.call(client.stub.GetObjects, cluster_pb2.GetObjectsRequest(kind="Node"))
            client.close()
        finally:
            config.select(None, insecure=False)


def test_apply_passes_an_unreachable_master_on_to_the_next(tmp_path: Path) -> None:
    # `apply` sends through call_method with its own codec (master/cli/apply_wire.py); the
    # generated classes read and answer it on the master's side.
    seen: list[cluster_pb2.ApplyManifestsRequest] = []

    def apply(
        request: cluster_pb2.ApplyManifestsRequest, context: grpc.ServicerContext
    ) -> cluster_pb2.ApplyManifestsResponse:
        seen.append(request)
        return cluster_pb2.ApplyManifestsResponse(
            results=[cluster_pb2.ObjectResult(kind="Deployment", name="web", action="created")],
            warnings=["one"],
        )

    server, port = _serve(
        "ApplyManifests",
        apply,
        cluster_pb2.ApplyManifestsRequest.FromString,
        cluster_pb2.ApplyManifestsResponse.SerializeToString,
    )
    manifest = tmp_path / "web.yaml"
    manifest.write_bytes(b"kind: Deployment\n")
    with socket.socket() as held:
        held.bind(("127.0.0.1", 0))
        dead = f"127.0.0.1:{held.getsockname()[1]}"
        config.select(None, insecure=True)
        try:
            client = MasterClient(f"{dead},127.0.0.1:{port}")
            client._connect_wait = 0.2
            reply = client.call_method(
                apply_wire.METHOD,
                apply_wire.encode_request,
                apply_wire.decode_response,
                apply_wire.ApplyRequest(tuple(read_sources([str(manifest)])), namespace="ns"),
            )
            client.close()
        finally:
            config.select(None, insecure=False)
            server.stop(grace=None)

    assert client.address == f"127.0.0.1:{port}"
    assert reply.results == (apply_wire.ObjectResult("Deployment", "web", "created"),)
    assert reply.warnings == ("one",)
    assert [(f.name, f.content) for f in seen[0].files] == [(str(manifest), b"kind: Deployment\n")]
    assert seen[0].namespace == "ns"
