"""The HTTP/2 side of `apply`'s own gRPC call (master/cli/h2_unary.py's Exchange), fed the
frames a server sends, byte for byte: no sockets."""

from __future__ import annotations

import pytest

from master.cli import h2_unary as h2
from master.cli.hpack import HeaderDecoder, encode_headers

PATH = "/pinnace.v1.ClusterService/ApplyManifests"


def _frames(data: bytes) -> list[tuple[int, int, int, bytes]]:
    """(type, flags, stream, payload) of each frame in `data`."""
    found = []
    while data:
        length = int.from_bytes(data[:3], "big")
        kind, flags = data[3], data[4]
        stream = int.from_bytes(data[5:9], "big")
        found.append((kind, flags, stream, data[9 : 9 + length]))
        data = data[9 + length :]
    return found


def _opened(message: bytes = b"hello") -> tuple[h2.Exchange, list[tuple[int, int, int, bytes]]]:
    exchange = h2.Exchange("127.0.0.1:7400", "https", PATH, message, timeout=30.0)
    opening = exchange.opening()
    assert opening.startswith(h2.PREFACE)
    return exchange, _frames(opening[len(h2.PREFACE) :])


def _settings(values: dict[int, int] | None = None) -> bytes:
    pairs = (values or {}).items()
    payload = b"".join(k.to_bytes(2, "big") + v.to_bytes(4, "big") for k, v in pairs)
    return h2.frame(h2.SETTINGS, 0, 0, payload)


def _headers(fields: list[tuple[str, str]], flags: int = h2.END_HEADERS) -> bytes:
    return h2.frame(h2.HEADERS, flags, 1, encode_headers(fields))


OK_HEADERS = [(":status", "200"), ("content-type", "application/grpc")]


def _message(body: bytes) -> bytes:
    return b"\x00" + len(body).to_bytes(4, "big") + body


def test_the_request_is_one_grpc_message_on_stream_one_with_grpcs_headers() -> None:
    _, frames = _opened(b"hello")
    kinds = [(k, f, s) for k, f, s, _ in frames]

    assert kinds == [
        (h2.SETTINGS, 0, 0),
        (h2.WINDOW_UPDATE, 0, 0),
        (h2.HEADERS, h2.END_HEADERS, 1),
        (h2.DATA, h2.END_STREAM, 1),
    ]
    headers = dict(HeaderDecoder().decode(frames[2][3]))
    assert headers == {
        ":method": "POST",
        ":scheme": "https",
        ":path": PATH,
        ":authority": "127.0.0.1:7400",
        "content-type": "application/grpc",
        "te": "trailers",
        "grpc-timeout": "30000m",
        "user-agent": "pinnace-cli",
    }
    assert frames[3][3] == _message(b"hello")


def test_a_reply_and_status_ok_give_the_message_and_settings_and_pings_are_answered() -> None:
    exchange, _ = _opened()
    answer = exchange.feed(_settings() + h2.frame(h2.PING, 0, 0, b"12345678"))

    assert _frames(answer) == [(h2.SETTINGS, h2.ACK, 0, b""), (h2.PING, h2.ACK, 0, b"12345678")]
    assert exchange.heard and not exchange.finished
    # The reply arrives in pieces that split frames anywhere.
    reply = (
        _headers(OK_HEADERS)
        + h2.frame(h2.DATA, 0, 1, _message(b"world"))
        + _headers([("grpc-status", "0")], h2.END_HEADERS | h2.END_STREAM)
    )
    for i in range(0, len(reply), 7):
        exchange.feed(reply[i : i + 7])

    assert exchange.finished
    assert exchange.reply() == b"world"


def test_a_trailers_only_failure_carries_the_masters_sentence() -> None:
    exchange, _ = _opened()
    exchange.feed(
        _headers(
            [*OK_HEADERS, ("grpc-status", "3"), ("grpc-message", "web.yaml: bad%0Anext %C3%A9")],
            h2.END_HEADERS | h2.END_STREAM,
        )
    )

    with pytest.raises(h2.CallFailed) as failed:
        exchange.reply()
    assert (failed.value.code, failed.value.details) == (
        "INVALID_ARGUMENT",
        "web.yaml: bad\nnext é",
    )


def test_a_header_block_may_continue_in_continuation_frames() -> None:
    exchange, _ = _opened()
    block = encode_headers(OK_HEADERS)
    exchange.feed(
        h2.frame(h2.HEADERS, 0, 1, block[:3])
        + h2.frame(h2.CONTINUATION, h2.END_HEADERS, 1, block[3:])
        + h2.frame(h2.DATA, 0, 1, _message(b"x"))
        + _headers([("grpc-status", "0")], h2.END_HEADERS | h2.END_STREAM)
    )

    assert exchange.reply() == b"x"


def test_a_large_request_waits_for_the_peers_windows_and_frame_size() -> None:
    message = bytes(200_000)
    exchange, frames = _opened(message)
    sent = sum(len(p) for k, _, _, p in frames if k == h2.DATA)

    # The default windows: 65,535 bytes, in frames of at most 16,384.
    assert sent == h2.DEFAULT_WINDOW
    assert max(len(p) for k, _, _, p in frames if k == h2.DATA) == h2.DEFAULT_MAX_FRAME
    # The peer's settings open the stream's window, but the connection's stays shut.
    more = _frames(exchange.feed(_settings({h2.SETTINGS_INITIAL_WINDOW_SIZE: 1_000_000})))
    assert [k for k, *_ in more] == [h2.SETTINGS]
    grow = (1_000_000).to_bytes(4, "big")
    rest = _frames(exchange.feed(h2.frame(h2.WINDOW_UPDATE, 0, 0, grow)))
    sent += sum(len(p) for k, _, _, p in rest if k == h2.DATA)

    assert sent == len(message) + 5
    assert rest[-1][1] == h2.END_STREAM


@pytest.mark.parametrize(
    ("frames", "code"),
    [
        (h2.frame(h2.GOAWAY, 0, 0, bytes(8) + b"bye"), "UNAVAILABLE"),
        (h2.frame(h2.RST_STREAM, 0, 1, h2.REFUSED_STREAM.to_bytes(4, "big")), "UNAVAILABLE"),
        (h2.frame(h2.RST_STREAM, 0, 1, (2).to_bytes(4, "big")), "INTERNAL"),
        (_headers([(":status", "503")], h2.END_HEADERS | h2.END_STREAM), "UNAVAILABLE"),
        (_headers([(":status", "200")], h2.END_HEADERS | h2.END_STREAM), "INTERNAL"),
    ],
)
def test_a_call_the_server_ends_without_a_status_is_named_as_grpc_names_it(
    frames: bytes, code: str
) -> None:
    exchange, _ = _opened()
    exchange.feed(frames)

    assert exchange.finished
    with pytest.raises(h2.CallFailed) as failed:
        exchange.reply()
    assert failed.value.code == code


def test_a_connection_that_closes_mid_reply_is_unavailable() -> None:
    exchange, _ = _opened()
    exchange.feed(_settings() + _headers(OK_HEADERS))
    exchange.connection_closed()

    with pytest.raises(h2.CallFailed) as failed:
        exchange.reply()
    assert failed.value.code == "UNAVAILABLE"


def test_grpc_timeout_fits_eight_digits() -> None:
    assert h2.grpc_timeout(30.0) == "30000m"
    assert h2.grpc_timeout(10**6) == "1000000S"
    assert h2.grpc_timeout(0.0001) == "1m"
