"""`apply`'s own gRPC call (master/cli/h2_client.py, h2_unary.py) against grpcio's server,
in-process: plaintext and TLS with client certificates as the master serves them, the
master's failures in the same sentences grpcio's path gives, several masters; and the
connect wait's retries on a fake clock."""

from __future__ import annotations

import datetime as dt
import socket
from collections.abc import Callable, Iterator
from concurrent import futures
from pathlib import Path
from typing import Any

import grpc
import pytest

from master.cli import apply_wire, config
from master.cli.client import MasterClient
from master.cli.config import CONNECT_WAIT_SECONDS
from master.cli.errors import CliError
from master.cli.h2_client import (
    PROXY_VARIABLES,
    H2Client,
    available,
    retry_pause,
)
from master.cli.h2_unary import Unreached
from master.pki.bootstrap import ensure_pki, write_admin_config
from master.pki.ca import CertificateAuthority
from master.pki.clientconfig import ClientConfig, render_client_config
from protos import cluster_pb2

SERVICE = "pinnace.v1.ClusterService"
Behaviour = Callable[[cluster_pb2.ApplyManifestsRequest, grpc.ServicerContext], Any]


def _serve(
    behaviour: Behaviour, credentials: grpc.ServerCredentials | None = None
) -> tuple[grpc.Server, str]:
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
    handler = grpc.unary_unary_rpc_method_handler(
        behaviour,
        request_deserializer=cluster_pb2.ApplyManifestsRequest.FromString,
        response_serializer=cluster_pb2.ApplyManifestsResponse.SerializeToString,
    )
    server.add_generic_rpc_handlers(
        (grpc.method_handlers_generic_handler(SERVICE, {"ApplyManifests": handler}),)
    )
    if credentials is None:
        port = server.add_insecure_port("127.0.0.1:0")
    else:
        port = server.add_secure_port("127.0.0.1:0", credentials)
    server.start()
    return server, f"127.0.0.1:{port}"


def _applied(
    request: cluster_pb2.ApplyManifestsRequest, context: grpc.ServicerContext
) -> cluster_pb2.ApplyManifestsResponse:
    # Metadata enough for the server's encoder to index and Huffman-code what it sends.
    context.set_trailing_metadata((("x-note", "applied " * 20), ("x-served-by", "test")))
    return cluster_pb2.ApplyManifestsResponse(
        results=[
            cluster_pb2.ObjectResult(kind="Deployment", name=f.name, action="created")
            for f in request.files
        ],
        warnings=[f"namespace {request.namespace}"],
    )


def _request(names: tuple[str, ...] = ("web.yaml",)) -> bytes:
    files = tuple(apply_wire.SourceFile(n, b"kind: Deployment\n" * 10) for n in names)
    return apply_wire.encode_request(apply_wire.ApplyRequest(files, namespace="ns"))


@pytest.fixture
def insecure() -> Iterator[None]:
    config.select(None, insecure=True)
    try:
        yield
    finally:
        config.select(None, insecure=False)


def _held_port() -> socket.socket:
    """A bound loopback port nothing listens on (no one else takes it while held)."""
    held = socket.socket()
    held.bind(("127.0.0.1", 0))
    return held


def test_a_plaintext_master_answers_the_call(insecure: None) -> None:
    server, address = _serve(_applied)
    try:
        reply = apply_wire.decode_response(
            H2Client(address).call(apply_wire.METHOD, _request(("a.yaml", "b.yaml")))
        )
    finally:
        server.stop(grace=None)

    assert [r.name for r in reply.results] == ["a.yaml", "b.yaml"]
    assert reply.warnings == ("namespace ns",)


def test_a_request_larger_than_the_default_windows_goes_through(insecure: None) -> None:
    server, address = _serve(_applied)
    names = tuple(f"{i:04}-{'x' * 200}.yaml" for i in range(2000))  # ~0.4 MB
    try:
        reply = apply_wire.decode_response(
            H2Client(address).call(apply_wire.METHOD, _request(names))
        )
    finally:
        server.stop(grace=None)

    assert len(reply.results) == 2000


@pytest.mark.parametrize(
    ("code", "details"),
    [
        (grpc.StatusCode.INVALID_ARGUMENT, "web.yaml: document 1: spec.replicas: bad\nnext: é"),
        (grpc.StatusCode.NOT_FOUND, "deployment web not found"),
        (grpc.StatusCode.PERMISSION_DENIED, "not an admin"),
        (grpc.StatusCode.UNAVAILABLE, "nothing was changed: this master is a follower"),
        (grpc.StatusCode.UNAVAILABLE, "gone"),
        (grpc.StatusCode.ABORTED, "try again"),
    ],
)
def test_a_failed_call_reads_as_grpcios_path_says_it(
    insecure: None, code: grpc.StatusCode, details: str
) -> None:
    def fail(request: Any, context: grpc.ServicerContext) -> Any:
        context.abort(code, details)

    server, address = _serve(fail)
    try:
        with pytest.raises(CliError) as ours:
            client = H2Client(address)
            client._connect_wait = 0.2
            client.call(apply_wire.METHOD, _request())
        grpcio = MasterClient(address)
        grpcio._connect_wait = 0.2
        with pytest.raises(CliError) as theirs:
            grpcio.call_method(
                apply_wire.METHOD,
                apply_wire.encode_request,
                apply_wire.decode_response,
                apply_wire.ApplyRequest(()),
            )
        grpcio.close()
    finally:
        server.stop(grace=None)

    assert str(ours.value) == str(theirs.value)


def test_the_call_passes_on_to_the_next_master(insecure: None) -> None:
    def follower(request: Any, context: grpc.ServicerContext) -> Any:
        context.abort(grpc.StatusCode.UNAVAILABLE, "nothing was changed: not the leader")

    refusing, first = _serve(follower)
    leader, second = _serve(_applied)
    with _held_port() as held:
        dead = f"127.0.0.1:{held.getsockname()[1]}"
        try:
            client = H2Client(f"{dead},{first},{second}")
            client._connect_wait = 0.2
            reply = apply_wire.decode_response(client.call(apply_wire.METHOD, _request()))
        finally:
            refusing.stop(grace=None)
            leader.stop(grace=None)

    assert [r.name for r in reply.results] == ["web.yaml"]


def test_no_master_reached_is_one_sentence(insecure: None) -> None:
    with _held_port() as one, _held_port() as two:
        a = f"127.0.0.1:{one.getsockname()[1]}"
        b = f"127.0.0.1:{two.getsockname()[1]}"
        single = H2Client(a)
        single._connect_wait = 0.1
        with pytest.raises(CliError, match=f"cannot reach the pinnace master at {a}:"):
            single.call(apply_wire.METHOD, _request())
        both = H2Client(f"{a},{b}")
        both._connect_wait = 0.1
        with pytest.raises(CliError, match=f"cannot reach any pinnace master of {a},{b}:"):
            both.call(apply_wire.METHOD, _request())


# -- TLS as the master serves it (master/api/security.py) ------------------------------------


@pytest.fixture
def tls_master(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """A TLS server requiring client certificates of its CA; the admin's pinnace.conf."""
    pki = ensure_pki(tmp_path / "data", ["127.0.0.1"], dt.datetime.now(dt.UTC))
    credentials = grpc.ssl_server_credentials(
        [(pki.server_key_pem, pki.server_chain_pem)],
        root_certificates=pki.client_roots_pem,
        require_client_auth=True,
    )
    server, address = _serve(_applied, credentials)
    conf = write_admin_config(pki, tmp_path / "data", address)
    try:
        yield address, conf
    finally:
        config.select(None, insecure=False)
        server.stop(grace=None)


def test_a_tls_master_answers_a_client_with_the_admins_credentials(
    tls_master: tuple[str, Path],
) -> None:
    address, conf = tls_master
    config.select(str(conf), insecure=False)

    reply = apply_wire.decode_response(H2Client(address).call(apply_wire.METHOD, _request()))

    assert [r.name for r in reply.results] == ["web.yaml"]


def test_credentials_of_another_cluster_fail_as_tls_at_once(
    tls_master: tuple[str, Path], tmp_path: Path
) -> None:
    address, conf = tls_master
    real = config._load(str(conf))
    foreign = CertificateAuthority.create(dt.datetime.now(dt.UTC)).pem
    other = tmp_path / "other.conf"
    other.write_text(
        render_client_config(ClientConfig(address, foreign, real.cert_pem, real.key_pem))
    )
    config.select(str(other), insecure=False)

    with pytest.raises(
        CliError, match=f"cannot establish TLS with the pinnace master at {address}"
    ):
        H2Client(address).call(apply_wire.METHOD, _request())


# -- the connect wait, on a fake clock --------------------------------------------------------


class FakeTime:
    def __init__(self) -> None:
        self.now = 0.0
        self.slept: list[float] = []

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


def test_a_refusing_master_is_tried_again_until_the_connect_wait_ends(insecure: None) -> None:
    time = FakeTime()
    calls: list[str] = []

    def refused(address: str, *args: Any) -> bytes:
        calls.append(address)
        raise Unreached("refused")

    client = H2Client("127.0.0.1:7400", call=refused, sleep=time.sleep, clock=time.clock)
    with pytest.raises(CliError, match=r"cannot reach the pinnace master at 127\.0\.0\.1:7400"):
        client.call(apply_wire.METHOD, b"")

    assert time.slept[:4] == [retry_pause(i) for i in range(4)]
    assert CONNECT_WAIT_SECONDS - retry_pause(9) < time.now <= CONNECT_WAIT_SECONDS
    assert len(calls) == len(time.slept) + 1


def test_a_master_that_comes_up_during_the_wait_takes_the_call(insecure: None) -> None:
    time = FakeTime()

    def starting(address: str, *args: Any) -> bytes:
        if time.now < 0.3:
            raise Unreached("refused")
        return b"ok"

    client = H2Client("127.0.0.1:7400", call=starting, sleep=time.sleep, clock=time.clock)

    assert client.call(apply_wire.METHOD, b"") == b"ok"
    assert time.slept == [0.05, 0.1, 0.2]


def test_failed_tls_is_not_tried_again(insecure: None) -> None:
    time = FakeTime()

    def tls_failed(address: str, *args: Any) -> bytes:
        raise Unreached("bad certificate", tls=True)

    client = H2Client("127.0.0.1:7400", call=tls_failed, sleep=time.sleep, clock=time.clock)
    with pytest.raises(CliError, match="cannot establish TLS"):
        client.call(apply_wire.METHOD, b"")
    assert time.slept == []


@pytest.mark.parametrize("variable", PROXY_VARIABLES)
def test_a_configured_proxy_leaves_the_call_to_grpcio(
    monkeypatch: pytest.MonkeyPatch, variable: str
) -> None:
    # grpcio reaches the master through an HTTP proxy named so; this client cannot.
    for name in PROXY_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    assert available()
    monkeypatch.setenv(variable, "http://proxy.example:3128")

    assert not available()


def test_a_master_whose_certificate_names_another_address_fails_as_tls(tmp_path: Path) -> None:
    # The master's name (here its address) is checked by OpenSSL through master/cli/bare_tls.py,
    # as ssl.SSLContext(PROTOCOL_TLS_CLIENT) checks it: a certificate of the cluster's CA
    # issued for another address is refused.
    pki = ensure_pki(tmp_path / "data", ["10.9.9.9"], dt.datetime.now(dt.UTC))
    credentials = grpc.ssl_server_credentials(
        [(pki.server_key_pem, pki.server_chain_pem)],
        root_certificates=pki.client_roots_pem,
        require_client_auth=True,
    )
    server, address = _serve(_applied, credentials)
    try:
        config.select(str(write_admin_config(pki, tmp_path / "data", address)), insecure=False)
        with pytest.raises(
            CliError, match=f"cannot establish TLS with the pinnace master at {address}"
        ):
            H2Client(address).call(apply_wire.METHOD, _request())
    finally:
        config.select(None, insecure=False)
        server.stop(grace=None)
