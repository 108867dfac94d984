"""One unary gRPC call over HTTP/2 on the interpreter's _socket and _ssl, for `apply`.

Why: `pinnace apply` is the first step of apply -> 3 running (issue 15), and importing
grpcio was most of the CLI's start before it could send (45-60 ms of CPU on a loaded
machine, more than the master and the agent spend on the whole apply: cygrpc imports
asyncio, grpc imports grpc.aio). The connection is the C modules' own
(master/cli/bare_tls.py: not even the socket and ssl modules' enums are built). The
call is real gRPC over HTTP/2 (the master is unchanged): one stream, the request as one
length-prefixed message, the reply and the status from the trailers.

`Exchange` is the call's HTTP/2 state, pure (bytes in, bytes out): the connection preface
and our SETTINGS, the HEADERS and DATA of stream 1 within the peer's flow-control windows
and frame size, the answers HTTP/2 requires (SETTINGS and PING acknowledged), the reply's
HEADERS, DATA and trailers, RST_STREAM and GOAWAY. It announces windows large enough for
any reply the CLI accepts, so it never has to grant more. `call_once` is the edge: it
connects (TLS through bare_tls's context, or plaintext), feeds what it reads into the
exchange and writes what comes back. Failures are `Unreached` (no connection, or TLS
failed: the caller may try again or another master) and `CallFailed` (the call ended with
a gRPC status other than OK, named as master/cli/failures.py names it).
"""

from __future__ import annotations

import time

from master.cli.bare_tls import Plain, SSLError, TlsStream, connect
from master.cli.failures import status_name
from master.cli.hpack import HeaderDecoder, HpackError, encode_headers

# mypy reads any constant named TYPE_CHECKING as typing's (kernel/records.py says why).
TYPE_CHECKING = False
if TYPE_CHECKING:
    import _ssl

PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
# Frame types (RFC 9113 6).
DATA, HEADERS, PRIORITY, RST_STREAM, SETTINGS, PUSH_PROMISE, PING, GOAWAY = range(8)
WINDOW_UPDATE, CONTINUATION = 8, 9
# Flags.
END_STREAM, ACK, END_HEADERS, PADDED, PRIORITY_FLAG = 0x1, 0x1, 0x4, 0x8, 0x20
# Settings.
SETTINGS_ENABLE_PUSH, SETTINGS_INITIAL_WINDOW_SIZE, SETTINGS_MAX_FRAME_SIZE = 0x2, 0x4, 0x5
DEFAULT_WINDOW = 65_535
DEFAULT_MAX_FRAME = 16_384
MAX_WINDOW = 2**31 - 1
# RST_STREAM / GOAWAY error codes that mean the request was not processed: try again.
REFUSED_STREAM, CANCEL = 0x7, 0x8
STREAM = 1
# The most a reply may carry, as grpcio's option the other verbs set (client.py).
MAX_REPLY_BYTES = 64 * 1024 * 1024
# HTTP statuses without gRPC's own status, as gRPC maps them (doc/http-grpc-status-mapping).
_HTTP_STATUS = {
    "400": "INTERNAL",
    "401": "UNAUTHENTICATED",
    "403": "PERMISSION_DENIED",
    "404": "UNIMPLEMENTED",
    "429": "UNAVAILABLE",
    "502": "UNAVAILABLE",
    "503": "UNAVAILABLE",
    "504": "UNAVAILABLE",
}


class CallFailed(Exception):
    """The call ended with gRPC status `code` (its name) and the master's `details`."""

    def __init__(self, code: str, details: str) -> None:
        super().__init__(f"{code}: {details}")
        self.code = code
        self.details = details


class Unreached(Exception):
    """No call was made: the connection failed (`tls`: the TCP port answered, TLS did not)."""

    def __init__(self, why: str, tls: bool = False) -> None:
        super().__init__(why)
        self.tls = tls


def frame(kind: int, flags: int, stream: int, payload: bytes = b"") -> bytes:
    return (
        len(payload).to_bytes(3, "big") + bytes([kind, flags]) + stream.to_bytes(4, "big") + payload
    )


def grpc_timeout(seconds: float) -> str:
    """The grpc-timeout header: at most 8 digits, in the finest unit that fits."""
    for unit, scale in (("m", 1_000), ("S", 1), ("M", 1 / 60), ("H", 1 / 3600)):
        value = max(1, int(seconds * scale))
        if value < 100_000_000:
            return f"{value}{unit}"
    return "99999999H"


def _settings(payload: bytes) -> dict[int, int]:
    if len(payload) % 6:
        raise CallFailed("INTERNAL", "HTTP/2: a SETTINGS frame of a wrong length")
    return {
        int.from_bytes(payload[i : i + 2], "big"): int.from_bytes(payload[i + 2 : i + 6], "big")
        for i in range(0, len(payload), 6)
    }


def _unpadded(flags: int, payload: bytes) -> bytes:
    if not flags & PADDED:
        return payload
    if not payload or payload[0] >= len(payload):
        raise CallFailed("INTERNAL", "HTTP/2: padding longer than its frame")
    return payload[1 : len(payload) - payload[0]]


class Exchange:
    """The HTTP/2 state of one unary call on a new connection (see the module docstring)."""

    def __init__(
        self, authority: str, scheme: str, path: str, message: bytes, timeout: float
    ) -> None:
        self._headers = [
            (":method", "POST"),
            (":scheme", scheme),
            (":path", path),
            (":authority", authority),
            ("content-type", "application/grpc"),
            ("te", "trailers"),
            ("grpc-timeout", grpc_timeout(timeout)),
            ("user-agent", "pinnace-cli"),
        ]
        # The request as one gRPC message: not compressed, its length, its bytes.
        self._pending = b"\x00" + len(message).to_bytes(4, "big") + message
        self._send_window = DEFAULT_WINDOW  # the connection's
        self._stream_window = DEFAULT_WINDOW
        self._peer_initial_window = DEFAULT_WINDOW
        self._max_frame = DEFAULT_MAX_FRAME
        self._decoder = HeaderDecoder()
        self._buffer = bytearray()
        self._block = bytearray()  # a header block waiting for its CONTINUATION
        self._block_ends_stream = False
        self._response_headers: dict[str, str] | None = None
        self._trailers: dict[str, str] | None = None
        self._body = bytearray()
        self._failure: CallFailed | None = None
        # Whether the peer has spoken HTTP/2 to us (its SETTINGS came): past TLS.
        self.heard = False
        self.finished = False

    # -- what we send ------------------------------------------------------------------

    def opening(self) -> bytes:
        """The preface, our settings, the connection's window, the request's headers and as
        much of its body as the default windows allow."""
        settings = b"".join(
            key.to_bytes(2, "big") + value.to_bytes(4, "big")
            for key, value in (
                (SETTINGS_ENABLE_PUSH, 0),
                (SETTINGS_INITIAL_WINDOW_SIZE, MAX_WINDOW),
            )
        )
        grow = (MAX_WINDOW - DEFAULT_WINDOW).to_bytes(4, "big")
        block = encode_headers(self._headers)
        return (
            PREFACE
            + frame(SETTINGS, 0, 0, settings)
            + frame(WINDOW_UPDATE, 0, 0, grow)
            + frame(HEADERS, END_HEADERS, STREAM, block)
            + self._data()
        )

    def _data(self) -> bytes:
        """DATA frames for as much of the request as the windows allow (END_STREAM on the
        last); b"" when the windows are shut or nothing is left."""
        out = []
        while self._pending:
            size = min(len(self._pending), self._max_frame, self._send_window, self._stream_window)
            if size <= 0:
                break
            chunk, self._pending = self._pending[:size], self._pending[size:]
            self._send_window -= size
            self._stream_window -= size
            out.append(frame(DATA, 0 if self._pending else END_STREAM, STREAM, chunk))
        return b"".join(out)

    # -- what we receive ---------------------------------------------------------------

    def feed(self, data: bytes) -> bytes:
        """Takes bytes read from the connection; returns what must be written in answer."""
        self._buffer += data
        out = []
        while len(self._buffer) >= 9 and not self.finished:
            length = int.from_bytes(self._buffer[0:3], "big")
            if len(self._buffer) < 9 + length:
                break
            kind, flags = self._buffer[3], self._buffer[4]
            stream = int.from_bytes(self._buffer[5:9], "big") & 0x7FFF_FFFF
            payload = bytes(self._buffer[9 : 9 + length])
            del self._buffer[: 9 + length]
            try:
                out.append(self._frame(kind, flags, stream, payload))
            except HpackError as e:
                self._fail("INTERNAL", f"HTTP/2: the reply's headers: {e}")
            except CallFailed as e:
                self._fail(e.code, e.details)
        return b"".join(out)

    def connection_closed(self) -> None:
        if not self.finished:
            self._fail("UNAVAILABLE", "the connection closed before the reply was complete")

    def _fail(self, code: str, details: str) -> None:
        if not self.finished:
            self._failure = CallFailed(code, details)
            self.finished = True

    def _frame(self, kind: int, flags: int, stream: int, payload: bytes) -> bytes:
        if kind == SETTINGS:
            if flags & ACK:
                return b""
            self.heard = True
            settings = _settings(payload)
            if SETTINGS_INITIAL_WINDOW_SIZE in settings:
                new = settings[SETTINGS_INITIAL_WINDOW_SIZE]
                self._stream_window += new - self._peer_initial_window
                self._peer_initial_window = new
            self._max_frame = settings.get(SETTINGS_MAX_FRAME_SIZE, self._max_frame)
            return frame(SETTINGS, ACK, 0) + self._data()
        if kind == PING:
            return b"" if flags & ACK else frame(PING, ACK, 0, payload)
        if kind == WINDOW_UPDATE:
            grow = int.from_bytes(payload[:4], "big") & 0x7FFF_FFFF
            if stream == 0:
                self._send_window += grow
            elif stream == STREAM:
                self._stream_window += grow
            return self._data()
        if kind == GOAWAY:
            last = int.from_bytes(payload[:4], "big") & 0x7FFF_FFFF
            if last < STREAM:
                # Our stream was never taken: the request did nothing, another try may.
                debug = payload[8:].decode("utf-8", "replace")
                self._fail("UNAVAILABLE", f"the master closed the connection (GOAWAY) {debug}")
            return b""
        if stream != STREAM:
            return b""  # PRIORITY, or frames of a stream we did not open
        if kind == RST_STREAM:
            code = int.from_bytes(payload[:4], "big")
            name = {REFUSED_STREAM: "UNAVAILABLE", CANCEL: "CANCELLED"}.get(code, "INTERNAL")
            self._fail(name, f"the master reset the call (HTTP/2 error {code})")
        elif kind == HEADERS:
            block = _unpadded(flags, payload)
            if flags & PRIORITY_FLAG:
                block = block[5:]
            self._block = bytearray(block)
            self._block_ends_stream = bool(flags & END_STREAM)
            if flags & END_HEADERS:
                self._headers_done()
        elif kind == CONTINUATION:
            self._block += payload
            if flags & END_HEADERS:
                self._headers_done()
        elif kind == DATA:
            self._body += _unpadded(flags, payload)
            if len(self._body) > MAX_REPLY_BYTES + 5:
                self._fail("RESOURCE_EXHAUSTED", "the reply is larger than the CLI accepts")
            elif flags & END_STREAM:
                self._end()
        elif kind == PUSH_PROMISE:
            self._fail("INTERNAL", "HTTP/2: a PUSH_PROMISE, which we turned off")
        return b""

    def _headers_done(self) -> None:
        fields = dict(self._decoder.decode(bytes(self._block)))
        self._block = bytearray()
        if self._response_headers is None:
            self._response_headers = fields
        else:
            self._trailers = fields
        if self._block_ends_stream:
            self._end()

    def _end(self) -> None:
        """The stream ended: the outcome from the headers, the trailers and the body."""
        headers = self._response_headers or {}
        # A trailers-only reply carries its status in the one header block.
        trailers = self._trailers if self._trailers is not None else headers
        status = headers.get(":status", "")
        if "grpc-status" not in trailers:
            if status != "200":
                self._fail(_HTTP_STATUS.get(status, "UNKNOWN"), f"HTTP status {status}")
            else:
                self._fail("INTERNAL", "the reply ended without a gRPC status")
            return
        try:
            code = int(trailers["grpc-status"])
        except ValueError:
            code = 2  # UNKNOWN
        if code != 0:
            import urllib.parse  # only a failed call has a message to decode

            details = urllib.parse.unquote(trailers.get("grpc-message", ""), errors="replace")
            self._fail(status_name(code), details)
            return
        self.finished = True

    def reply(self) -> bytes:
        """The reply message's bytes; CallFailed with the call's status otherwise."""
        if self._failure is not None:
            raise self._failure
        body = bytes(self._body)
        if len(body) < 5:
            raise CallFailed("INTERNAL", "the reply carries no message")
        if body[0] != 0:
            raise CallFailed("INTERNAL", "the reply is compressed, which we did not ask for")
        size = int.from_bytes(body[1:5], "big")
        if len(body) != 5 + size:
            raise CallFailed("INTERNAL", "the reply is not one whole message")
        return body[5:]


def _ascii_name(host: str) -> bytes:
    """`host` for getaddrinfo and TLS's server name, as ASCII bytes. Given a str, the socket
    and ssl modules encode it with the idna codec, whose first use imports encodings.idna,
    stringprep and unicodedata: 3-8 ms of `apply`'s start before it sends (issue 15). The
    codec leaves ASCII as it is, so the name resolved and checked is the same; only a
    non-ASCII name pays for it."""
    if host.isascii():
        return host.encode("ascii")
    return host.encode("idna")


def call_once(
    address: str,
    path: str,
    message: bytes,
    tls: _ssl._SSLContext | None,
    timeout: float,
    connect_timeout: float,
) -> bytes:
    """One call to the master at HOST:PORT `address`: the reply message's bytes."""
    host, _, port_text = address.rpartition(":")
    host = host.strip("[]")
    deadline = time.monotonic() + timeout
    name = _ascii_name(host)
    try:
        raw = connect(name, int(port_text), connect_timeout)
    except (OSError, ValueError, UnicodeError) as e:
        raise Unreached(f"cannot connect to {address}: {e}") from None
    sock = Plain(raw)
    try:
        if tls is not None:
            try:
                sock = TlsStream(raw, tls, name)
            except (OSError, SSLError) as e:
                raise Unreached(f"TLS with {address} failed: {e}", tls=True) from None
        exchange = Exchange(address, "https" if tls else "http", path, message, timeout)
        try:
            sock.settimeout(max(0.001, deadline - time.monotonic()))
            sock.sendall(exchange.opening())
            while not exchange.finished:
                sock.settimeout(max(0.001, deadline - time.monotonic()))
                data = sock.recv(65_536)
                if not data:
                    if not exchange.heard:
                        why = f"{address} closed the connection before it spoke HTTP/2"
                        raise Unreached(why, tls=tls is not None)
                    exchange.connection_closed()
                    break
                answer = exchange.feed(data)
                if answer:
                    sock.sendall(answer)
        except TimeoutError:
            raise CallFailed("DEADLINE_EXCEEDED", "the call took too long") from None
        except (OSError, SSLError) as e:
            if not exchange.heard:
                # Refused before it spoke HTTP/2: TLS (our certificate) or not a master.
                raise Unreached(
                    f"{address} closed the connection: {e}", tls=tls is not None
                ) from None
            exchange.connection_closed()
        return exchange.reply()
    finally:
        sock.close()
