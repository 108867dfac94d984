"""TCP and TLS for `apply`'s one call, on the interpreter's own _socket and _ssl.

Why: `pinnace apply` is the first step of apply -> 3 running (issue 15), and what its
process spends before it sends is on that path. The `socket` and `ssl` modules are thin
Python layers over the C modules `_socket` and `_ssl`, but importing them builds ~20 enum
classes (ssl's Options, AlertDescription, VerifyFlags, ...; socket's AddressFamily and
SocketKind) and imports enum, selectors, base64 and struct: ~15 ms of CPU of a ~45 ms
`apply` here, against ~2 ms for the C modules alone (`python -S -c 'import socket, ssl'`
against `'import _socket, _ssl'`, medians of 30). The C modules do the work either way:
the handshake, the certificate and name checks (OpenSSL's, set up in C since Python 3.7),
the timeouts. This module asks them for exactly what master/cli/h2_client.py's context
asked `ssl` for: TLS 1.2 or later, the cluster CA only, the master's name checked, our
certificate shown, ALPN h2.

Errors are the same classes as `ssl`'s and `socket`'s (`ssl.SSLError` is `_ssl.SSLError`;
refusals and timeouts are OSError and TimeoutError), so callers catch OSError and
SSLError as before. A peer that closes without TLS's close_notify reads as the end of the
stream, as `ssl` reads it by default (suppress_ragged_eofs).
"""

from __future__ import annotations

import _socket
import _ssl

SSLError = _ssl.SSLError
# ssl.TLSVersion.TLSv1_2 (the protocol's own version number).
_TLS_1_2 = 0x0303
# ALPN's wire form: each protocol name after its length (what ssl.set_alpn_protocols sends).
_ALPN_H2 = b"\x02h2"


def client_context(ca_pem: bytes, chain_path: str) -> _ssl._SSLContext:
    """A client context that trusts only `ca_pem`, checks the server's name (or address)
    and shows the certificate and key in the PEM file `chain_path`; ALPN h2, as gRPC
    requires. PROTOCOL_TLS_CLIENT makes OpenSSL require and verify the server's
    certificate and check its name (`ssl.SSLContext(PROTOCOL_TLS_CLIENT)` is this object)."""
    context = _ssl._SSLContext(_ssl.PROTOCOL_TLS_CLIENT)
    context.minimum_version = _TLS_1_2
    context.load_verify_locations(cadata=ca_pem.decode("ascii"))
    context.load_cert_chain(chain_path)
    # typeshed's _ssl stubs leave out the two private methods ssl.py itself calls.
    context._set_alpn_protocols(_ALPN_H2)  # type: ignore[attr-defined]
    return context


class _Socket(_socket.socket):
    """_socket.socket with a weak reference slot: the C TLS object holds its socket by a
    weak reference (socket.socket has the slot for the same reason)."""

    __slots__ = ("__weakref__",)


def connect(host: bytes, port: int, timeout: float) -> _socket.socket:
    """A TCP connection to the first address of `host` that takes it, with TCP_NODELAY
    (socket.create_connection's loop, without the socket module). `host` as ASCII bytes:
    a str would go through the idna codec (master/cli/h2_unary.py's _ascii_name)."""
    last: OSError | None = None
    for family, kind, proto, _, address in _socket.getaddrinfo(host, port, 0, _socket.SOCK_STREAM):
        sock = _Socket(family, kind, proto)
        try:
            sock.settimeout(timeout)
            sock.connect(address)
        except OSError as e:
            sock.close()
            last = e
            continue
        sock.setsockopt(_socket.IPPROTO_TCP, _socket.TCP_NODELAY, 1)
        return sock
    raise last if last is not None else OSError(f"getaddrinfo gave no address for {host!r}")


class Plain:
    """A connected socket, read and written as TlsStream is."""

    def __init__(self, sock: _socket.socket) -> None:
        self.sock = sock

    def settimeout(self, seconds: float) -> None:
        self.sock.settimeout(seconds)

    def sendall(self, data: bytes) -> None:
        self.sock.sendall(data)

    def recv(self, size: int) -> bytes:
        return self.sock.recv(size)

    def close(self) -> None:
        self.sock.close()


class TlsStream(Plain):
    """TLS over `sock` as a client of `server_name`: the handshake happens here, in the
    socket's timeout. SSLError (or OSError) when it fails."""

    def __init__(self, sock: _socket.socket, context: _ssl._SSLContext, server_name: bytes) -> None:
        super().__init__(sock)
        # The C object reads and writes `sock`'s file descriptor itself, in its timeout.
        self._tls = context._wrap_socket(  # type: ignore[attr-defined]
            sock, False, server_name.decode("ascii")
        )
        self._tls.do_handshake()

    def sendall(self, data: bytes) -> None:
        view = memoryview(data)
        while view:
            view = view[self._tls.write(view) :]

    def recv(self, size: int) -> bytes:
        try:
            return bytes(self._tls.read(size))
        except _ssl.SSLEOFError:
            return b""  # closed without close_notify: the end, as ssl reads it by default
