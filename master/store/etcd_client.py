"""EtcdClient: a small blocking client for etcd's v3 gRPC API, over several endpoints.

EtcdStore (etcd.py) needs four calls — Range, Txn, and for the leader lease
LeaseGrant/KeepAlive — over TLS, against a list of endpoints, failing over when
one member is down. The request and response messages are etcd's own, generated
from etcd's protos (`etcdserverpb`); we take them from the `aetcd` package,
which ships them generated for current grpcio/protobuf. aetcd's high-level
client is not used: it speaks plaintext to a single host, while a master must
reach every member of an etcd cluster over TLS with a client certificate.
(python-etcd3 is unmaintained and pins a protobuf this project cannot use.)

Calls are blocking, like the Store port that uses them: the master runs them
through `asyncio.to_thread`. gRPC channels are thread-safe, so one client may be
shared. Failover: a call that finds its member unavailable, or that has no answer
within one attempt's time (`_ATTEMPT_S`), moves to the next endpoint and tries
again until the overall timeout, each round over the members with longer attempts
(a slow answer is not a dead member); any other failure is one StoreError sentence
for the operator.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import grpc
from aetcd.rpc import rpc_pb2, rpc_pb2_grpc

from master.store.port import StoreError

# etcd answers a linearizable request in milliseconds; a request that has not
# been answered after this long is waiting for a quorum that is not there.
DEFAULT_TIMEOUT_S = 5.0
# One attempt on one member: etcd drops a proposal that meets a leader election and
# only says so after its own 5 s+ request timeout, so an attempt that has not been
# answered by then is tried again on the next member. Retrying a transaction is
# safe: EtcdStore's compares make a second application impossible, and it
# recognises its own first write when that did land. Each round over the members gives
# its attempts twice as long as the last (attempt_timeout): an answer that honestly takes
# longer than a second (a page of 1,000 objects from an etcd at load 40) must get the time
# it needs within the call's timeout, not be cut at 1 s on every try until the call fails.
_ATTEMPT_S = 1.0
_RETRIED = (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED)


def attempt_timeout(tried: int, endpoints: int, remaining: float) -> float:
    """Seconds for the next attempt, after `tried` attempts over `endpoints` members and
    with `remaining` seconds of the call's timeout left: _ATTEMPT_S in the first round over
    the members, doubling with each round after; never past the call's deadline."""
    rounds = tried // max(endpoints, 1)
    return min(_ATTEMPT_S * 2.0 ** min(rounds, 16), max(remaining, 0.05))


def _retried(e: grpc.RpcError) -> bool:
    # etcd passes our deadline on to its own context and may answer UNKNOWN when it expires.
    return e.code() in _RETRIED or "context deadline exceeded" in (e.details() or "")


# A whole cluster's objects come back in pages; a page may still be large.
_MAX_MESSAGE_BYTES = 64 * 1024 * 1024

# What an etcd server says when the deployment's limits are too small for one batch.
_LIMIT_HINTS = {
    "too many operations in txn request": "start etcd with a larger --max-txn-ops "
    "(pinnace writes one batch per transaction; 10000 is plenty)",
    "request is too large": "start etcd with a larger --max-request-bytes "
    "(pinnace writes one batch per transaction; 16777216 is plenty)",
}


@dataclass(frozen=True, slots=True)
class Endpoint:
    url: str
    target: str  # host:port for gRPC
    tls: bool


@dataclass(frozen=True, slots=True)
class EtcdSettings:
    """How to reach etcd: `pinnace master --etcd-endpoints ... --etcd-cafile ...`."""

    endpoints: tuple[str, ...]
    prefix: str = "/pinnace/"
    cafile: Path | None = None
    certfile: Path | None = None
    keyfile: Path | None = None
    timeout: float = DEFAULT_TIMEOUT_S


def parse_endpoints(text: str) -> tuple[str, ...]:
    """`--etcd-endpoints` (comma separated URLs) as a tuple, or ValueError saying what is wrong."""
    urls = tuple(u.strip() for u in text.split(",") if u.strip())
    if not urls:
        raise ValueError("give at least one URL, e.g. https://10.0.0.1:2379")
    for url in urls:
        _endpoint(url)
    return urls


def _endpoint(url: str) -> Endpoint:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"{url!r} is not an etcd URL like https://10.0.0.1:2379")
    try:
        port = parts.port or 2379
    except ValueError:
        raise ValueError(f"{url!r} has a bad port") from None
    if parts.path not in ("", "/"):
        raise ValueError(f"{url!r}: an etcd URL has no path")
    host = parts.hostname
    if ":" in host:
        host = f"[{host}]"
    return Endpoint(url, f"{host}:{port}", parts.scheme == "https")


def key_range_end(prefix: bytes) -> bytes:
    """The range_end that selects every key starting with `prefix` (etcd's convention)."""
    end = bytearray(prefix)
    for i in range(len(end) - 1, -1, -1):
        if end[i] < 0xFF:
            end[i] += 1
            return bytes(end[: i + 1])
    return b"\0"


class EtcdClient:
    """Blocking Range/Txn/Lease calls with failover across endpoints; see the module docstring."""

    def __init__(self, settings: EtcdSettings) -> None:
        try:
            self._endpoints = [_endpoint(u) for u in settings.endpoints]
        except ValueError as e:
            raise StoreError(f"--etcd-endpoints: {e}") from None
        if not self._endpoints:
            raise StoreError("--etcd-endpoints: give at least one URL")
        self._settings = settings
        self._credentials = _credentials(settings) if any(e.tls for e in self._endpoints) else None
        self._lock = threading.Lock()
        self._current = 0
        self._channels: dict[int, tuple[grpc.Channel, Any, Any]] = {}
        self._closed = False

    @property
    def urls(self) -> str:
        return ",".join(e.url for e in self._endpoints)

    @property
    def timeout(self) -> float:
        return self._settings.timeout

    def range(
        self, key: bytes, range_end: bytes = b"", *, limit: int = 0, revision: int = 0
    ) -> Any:
        request = rpc_pb2.RangeRequest(key=key, range_end=range_end, limit=limit, revision=revision)
        return self._call("kv", "Range", request)

    def txn(self, compare: Sequence[Any], success: Sequence[Any], failure: Sequence[Any]) -> Any:
        request = rpc_pb2.TxnRequest(compare=compare, success=success, failure=failure)
        return self._call("kv", "Txn", request)

    def lease_grant(self, ttl: int) -> Any:
        return self._call("lease", "LeaseGrant", rpc_pb2.LeaseGrantRequest(TTL=ttl))

    def lease_revoke(self, lease_id: int) -> Any:
        return self._call("lease", "LeaseRevoke", rpc_pb2.LeaseRevokeRequest(ID=lease_id))

    def lease_keepalive(self, lease_id: int, timeout: float) -> int:
        """Renew a lease once; its remaining TTL in seconds (0: it has expired)."""
        stub = self._stub("lease")

        def one() -> Any:
            return stub.LeaseKeepAlive(iter([rpc_pb2.LeaseKeepAliveRequest(ID=lease_id)]))

        try:
            for reply in self._with_deadline(one, timeout):
                return int(reply.TTL)
        except grpc.RpcError as e:
            if e.code() == grpc.StatusCode.CANCELLED and not self._closed:
                self._next_endpoint()
                raise StoreError(f"etcd did not renew the lease within {timeout:g}s") from None
            if _retried(e):
                self._next_endpoint()
            raise StoreError(self._explain(e)) from None
        return 0

    def aio_channel(self) -> grpc.aio.Channel:
        """A new asyncio channel to the current endpoint (for watches); the caller closes it."""
        with self._lock:
            if self._closed:
                raise StoreError("the store is closed")
            endpoint = self._endpoints[self._current]
        options = [("grpc.max_receive_message_length", _MAX_MESSAGE_BYTES)]
        if endpoint.tls and self._credentials is not None:
            return grpc.aio.secure_channel(endpoint.target, self._credentials, options=options)
        return grpc.aio.insecure_channel(endpoint.target, options=options)

    def next_endpoint(self) -> None:
        """Move to the next member (the current one failed a stream)."""
        self._next_endpoint()

    def close(self) -> None:
        with self._lock:
            self._closed = True
            channels, self._channels = self._channels, {}
        for channel, _, _ in channels.values():
            channel.close()

    # -- internals ---------------------------------------------------------------------

    def _with_deadline(self, make: Any, timeout: float) -> Any:
        # A streaming call has no per-call timeout argument in this shape; a
        # cancelled future bounds it instead.
        call = make()
        timer = threading.Timer(timeout, call.cancel)
        timer.start()
        try:
            return list(call)
        finally:
            timer.cancel()

    def _stub(self, service: str) -> Any:
        with self._lock:
            if self._closed:
                raise StoreError("the store is closed")
            index = self._current
            if index not in self._channels:
                endpoint = self._endpoints[index]
                options = [
                    ("grpc.max_receive_message_length", _MAX_MESSAGE_BYTES),
                    ("grpc.max_send_message_length", _MAX_MESSAGE_BYTES),
                ]
                channel = (
                    grpc.secure_channel(endpoint.target, self._credentials, options=options)
                    if endpoint.tls and self._credentials is not None
                    else grpc.insecure_channel(endpoint.target, options=options)
                )
                self._channels[index] = (
                    channel,
                    rpc_pb2_grpc.KVStub(channel),
                    rpc_pb2_grpc.LeaseStub(channel),
                )
            _, kv, lease = self._channels[index]
        return kv if service == "kv" else lease

    def _call(self, service: str, method: str, request: Any) -> Any:
        deadline = time.monotonic() + self._settings.timeout
        last: grpc.RpcError | None = None
        tried = 0
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0 and last is not None:
                raise StoreError(self._explain(last, timed_out=True)) from None
            stub = self._stub(service)
            try:
                timeout = attempt_timeout(tried, len(self._endpoints), remaining)
                return getattr(stub, method)(request, timeout=timeout)
            except grpc.RpcError as e:
                if not _retried(e) or self._closed:
                    raise StoreError(self._explain(e)) from None
                last = e
                tried += 1
                self._next_endpoint()
                if tried % len(self._endpoints) == 0:
                    time.sleep(min(0.1, max(deadline - time.monotonic(), 0)))

    def _next_endpoint(self) -> None:
        with self._lock:
            self._current = (self._current + 1) % len(self._endpoints)

    def _explain(self, e: grpc.RpcError, timed_out: bool = False) -> str:
        code, details = e.code(), e.details() or ""
        if self._closed:
            return "the store is closed"
        if code == grpc.StatusCode.UNAVAILABLE and "failed to connect" in details:
            return f"etcd is unreachable at {self.urls} ({details})"
        if timed_out or code in (grpc.StatusCode.DEADLINE_EXCEEDED, grpc.StatusCode.CANCELLED):
            # A retried attempt: nothing says whether an earlier one was applied.
            return (
                f"etcd at {self.urls} did not answer within {self._settings.timeout:g}s "
                f"(has its cluster lost quorum?); a write may or may not have been applied"
            )
        for needle, hint in _LIMIT_HINTS.items():
            if needle in details:
                return f"etcd refused a batch: {details}: {hint}"
        if code == grpc.StatusCode.UNAUTHENTICATED or code == grpc.StatusCode.PERMISSION_DENIED:
            return f"etcd at {self.urls} refused pinnace's credentials: {details}"
        return f"etcd at {self.urls} failed: {code.name}: {details}"


def _credentials(settings: EtcdSettings) -> grpc.ChannelCredentials:
    def read(path: Path | None, flag: str) -> bytes | None:
        if path is None:
            return None
        try:
            return path.read_bytes()
        except OSError as e:
            raise StoreError(f"{flag}: cannot read {path}: {e.strerror or e}") from None

    if (settings.certfile is None) != (settings.keyfile is None):
        raise StoreError("--etcd-certfile and --etcd-keyfile go together: give both or neither")
    return grpc.ssl_channel_credentials(
        root_certificates=read(settings.cafile, "--etcd-cafile"),
        private_key=read(settings.keyfile, "--etcd-keyfile"),
        certificate_chain=read(settings.certfile, "--etcd-certfile"),
    )
