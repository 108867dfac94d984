"""SPDY/3.1 framing, the part a port-forward server needs, as pure code.

`kubectl port-forward` (client-go) speaks SPDY/3.1 to the API server: since
Kubernetes 1.31 tunnelled inside a WebSocket (sub-protocol
`SPDY/3.1+portforward.k8s.io`, the SPDY bytes carried in binary messages with no
framing of their own), before that over a plain HTTP upgrade. Each forwarded
connection is two client-initiated streams (an error stream and a data
stream); see master/api/kube/portforward.py.

What is here: splitting a byte stream into frames (`FrameReader`), the
name/value header blocks (zlib with SPDY/3's dictionary, one compression context
per direction for the whole connection), and the frames the server writes
(SYN_REPLY, DATA, RST_STREAM, PING's echo, GOAWAY). Flow control is not
implemented: client-go's SPDY library (spdystream) neither enforces nor sends
WINDOW_UPDATEs, so they are read and ignored.
"""

from __future__ import annotations

import struct
import zlib
from dataclasses import dataclass, field

VERSION = 3
SYN_STREAM, SYN_REPLY, RST_STREAM, SETTINGS, PING, GOAWAY, HEADERS, WINDOW_UPDATE = (
    1, 2, 3, 4, 6, 7, 8, 9,
)  # fmt: skip
FLAG_FIN = 0x01
# RST_STREAM status codes.
PROTOCOL_ERROR, INVALID_STREAM, REFUSED_STREAM, CANCEL = 1, 2, 3, 5
MAX_FRAME = 1 << 24  # the 24-bit length field
# A frame larger than this is a misbehaving client (client-go writes 32 KiB at most).
MAX_ACCEPTED = 1 << 20


def _words(*words: str) -> bytes:
    return b"".join(struct.pack(">I", len(w)) + w.encode() for w in words)


# SPDY/3's zlib dictionary for header blocks (the protocol's constant, section 2.6.10.1).
DICTIONARY = _words(
    "options", "head", "post", "put", "delete", "trace", "accept", "accept-charset",
    "accept-encoding", "accept-language", "accept-ranges", "age", "allow", "authorization",
    "cache-control", "connection", "content-base", "content-encoding", "content-language",
    "content-length", "content-location", "content-md5", "content-range", "content-type",
    "date", "etag", "expect", "expires", "from", "host", "if-match", "if-modified-since",
    "if-none-match", "if-range", "if-unmodified-since", "last-modified", "location",
    "max-forwards", "pragma", "proxy-authenticate", "proxy-authorization", "range", "referer",
    "retry-after", "server", "te", "trailer", "transfer-encoding", "upgrade", "user-agent",
    "vary", "via", "warning", "www-authenticate", "method", "get", "status", "200 OK",
    "version", "HTTP/1.1", "url", "public", "set-cookie", "keep-alive", "origin",
) + (
    b"100101201202205206300302303304305306307402405406407408409410411412413414415416417"
    b"502504505203 Non-Authoritative Information204 No Content301 Moved Permanently"
    b"400 Bad Request401 Unauthorized403 Forbidden404 Not Found500 Internal Server Error"
    b"501 Not Implemented503 Service UnavailableJan Feb Mar Apr May Jun Jul Aug Sept Oct "
    b"Nov Dec 00:00:00 Mon, Tue, Wed, Thu, Fri, Sat, Sun, GMTchunked,text/html,image/png,"
    b"image/jpg,image/gif,application/xml,application/xhtml+xml,text/plain,text/javascript,"
    b"publicprivatemax-age=gzip,deflate,sdchcharset=utf-8charset=iso-8859-1,utf-,*,enq=0."
)  # fmt: skip


class SpdyError(Exception):
    """The peer broke the protocol; the connection cannot go on."""


@dataclass(frozen=True, slots=True)
class Frame:
    """One frame as read: `control` frames have a `type`; data frames a `stream_id`."""

    control: bool
    type: int
    flags: int
    payload: bytes
    stream_id: int = 0

    @property
    def fin(self) -> bool:
        return bool(self.flags & FLAG_FIN)


@dataclass(slots=True)
class FrameReader:
    """Frames out of a byte stream fed in arbitrary pieces."""

    _buffer: bytearray = field(default_factory=bytearray)

    def feed(self, data: bytes) -> list[Frame]:
        self._buffer += data
        frames = []
        while len(self._buffer) >= 8:
            head = bytes(self._buffer[:8])
            length = int.from_bytes(head[5:8], "big")
            if length > MAX_ACCEPTED:
                raise SpdyError(f"a SPDY frame of {length} bytes is larger than accepted")
            if len(self._buffer) < 8 + length:
                break
            payload = bytes(self._buffer[8 : 8 + length])
            del self._buffer[: 8 + length]
            flags = head[4]
            if head[0] & 0x80:
                version = int.from_bytes(head[0:2], "big") & 0x7FFF
                if version != VERSION:
                    raise SpdyError(f"SPDY version {version} is not spoken here (only 3.1)")
                frame_type = int.from_bytes(head[2:4], "big")
                frames.append(Frame(True, frame_type, flags, payload, _stream_of(payload)))
            else:
                stream = int.from_bytes(head[0:4], "big") & 0x7FFFFFFF
                frames.append(Frame(False, 0, flags, payload, stream))
        return frames


def _stream_of(payload: bytes) -> int:
    """The stream id most control frames start with (0 for those without)."""
    return int.from_bytes(payload[0:4], "big") & 0x7FFFFFFF if len(payload) >= 4 else 0


class HeaderCodec:
    """Header blocks both ways: each direction is one zlib stream for the connection."""

    def __init__(self) -> None:
        self._inflate = zlib.decompressobj(zdict=DICTIONARY)
        self._deflate = zlib.compressobj(zlib.Z_DEFAULT_COMPRESSION, zlib.DEFLATED, 15,
                                         zdict=DICTIONARY)  # fmt: skip

    def decode(self, block: bytes) -> dict[str, str]:
        """A received block -> {lower-case name: value} (repeated values joined by NUL)."""
        try:
            raw = self._inflate.decompress(block, 1 << 16)
        except zlib.error as e:
            raise SpdyError(f"a SPDY header block does not decompress: {e}") from None
        if self._inflate.unconsumed_tail:
            raise SpdyError("a SPDY header block is larger than 64 KiB")
        return parse_headers(raw)

    def encode(self, headers: dict[str, str]) -> bytes:
        raw = struct.pack(">I", len(headers)) + b"".join(
            struct.pack(">I", len(k)) + k.encode() + struct.pack(">I", len(v)) + v.encode()
            for k, v in headers.items()
        )
        return self._deflate.compress(raw) + self._deflate.flush(zlib.Z_SYNC_FLUSH)


def parse_headers(raw: bytes) -> dict[str, str]:
    def take(at: int) -> tuple[bytes, int]:
        if at + 4 > len(raw):
            raise SpdyError("a SPDY header block ends early")
        n = int.from_bytes(raw[at : at + 4], "big")
        if at + 4 + n > len(raw):
            raise SpdyError("a SPDY header block ends early")
        return raw[at + 4 : at + 4 + n], at + 4 + n

    if len(raw) < 4:
        raise SpdyError("a SPDY header block ends early")
    count, at, out = int.from_bytes(raw[:4], "big"), 4, {}
    for _ in range(count):
        name, at = take(at)
        value, at = take(at)
        out[name.decode(errors="replace").lower()] = value.decode(errors="replace")
    return out


def syn_stream_headers(frame: Frame, codec: HeaderCodec) -> dict[str, str]:
    """A SYN_STREAM's headers (stream id, associated id, priority and slot come first)."""
    if len(frame.payload) < 10:
        raise SpdyError("a SYN_STREAM frame is too short")
    return codec.decode(frame.payload[10:])


def _control(frame_type: int, flags: int, payload: bytes) -> bytes:
    return (
        struct.pack(">HHB", 0x8000 | VERSION, frame_type, flags)
        + len(payload).to_bytes(3, "big")
        + payload
    )


def syn_reply(stream_id: int, codec: HeaderCodec, fin: bool = False) -> bytes:
    block = codec.encode({})
    return _control(SYN_REPLY, FLAG_FIN if fin else 0, struct.pack(">I", stream_id) + block)


def data(stream_id: int, payload: bytes, fin: bool = False) -> bytes:
    return (
        struct.pack(">IB", stream_id & 0x7FFFFFFF, FLAG_FIN if fin else 0)
        + len(payload).to_bytes(3, "big")
        + payload
    )


def rst_stream(stream_id: int, status: int) -> bytes:
    return _control(RST_STREAM, 0, struct.pack(">II", stream_id, status))


def ping_reply(frame: Frame) -> bytes:
    """PING is answered with the same id."""
    return _control(PING, 0, frame.payload[:4])


def goaway(last_stream_id: int) -> bytes:
    return _control(GOAWAY, 0, struct.pack(">II", last_stream_id, 0))
