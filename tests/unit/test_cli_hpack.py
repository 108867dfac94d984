"""HPACK as `apply`'s own HTTP/2 call reads and writes it (master/cli/hpack.py), checked
against RFC 7541's own examples (Appendix C)."""

from __future__ import annotations

from fractions import Fraction

import pytest

from master.cli.hpack import (
    EOS,
    STATIC_TABLE,
    HeaderDecoder,
    HpackError,
    encode_headers,
    encode_integer,
    huffman_codes,
    huffman_decode,
)


def test_the_huffman_code_is_complete_and_has_the_rfcs_codes() -> None:
    codes = {symbol: (length, code) for (length, code), symbol in huffman_codes().items()}

    assert len(codes) == 257
    # A complete prefix code: every bit string decodes (Kraft's sum is exactly 1).
    assert sum(Fraction(1, 2**length) for length, _ in codes.values()) == 1
    # Appendix B, a few rows: '0', ' ', 'a', '<', 0, 255 and EOS.
    assert codes[ord("0")] == (5, 0x0)
    assert codes[ord(" ")] == (6, 0x14)
    assert codes[ord("a")] == (5, 0x3)
    assert codes[ord("<")] == (15, 0x7FFC)
    assert codes[0] == (13, 0x1FF8)
    assert codes[255] == (26, 0x3FFFFEE)
    assert codes[EOS] == (30, 0x3FFFFFFF)


@pytest.mark.parametrize(
    ("coded", "text"),
    [
        ("f1e3c2e5f23a6ba0ab90f4ff", b"www.example.com"),
        ("a8eb10649cbf", b"no-cache"),
        ("25a849e95ba97d7f", b"custom-key"),
        ("25a849e95bb8e8b4bf", b"custom-value"),
        ("6402", b"302"),
        ("aec3771a4b", b"private"),
        ("d07abe941054d444a8200595040b8166e082a62d1bff", b"Mon, 21 Oct 2013 20:13:21 GMT"),
        ("9d29ad171863c78f0b97c8e9ae82ae43d3", b"https://www.example.com"),
    ],
)
def test_huffman_strings_of_the_rfcs_examples_decode(coded: str, text: bytes) -> None:
    assert huffman_decode(bytes.fromhex(coded)) == text


def test_huffman_padding_must_be_a_short_prefix_of_eos() -> None:
    # '0' is 00000: three more one bits pad it; zeros do not, nor a whole byte of ones.
    assert huffman_decode(b"\x07") == b"0"
    with pytest.raises(HpackError):
        huffman_decode(b"\x00")
    with pytest.raises(HpackError):
        huffman_decode(b"\x07\xff")
    with pytest.raises(HpackError):
        huffman_decode(b"\xff\xff\xff\xff")  # EOS itself


def test_integers_with_a_prefix_as_the_rfc_writes_them() -> None:
    assert encode_integer(10, 5) == b"\x0a"
    assert encode_integer(1337, 5) == bytes([0x1F, 0x9A, 0x0A])
    assert encode_integer(42, 8) == b"\x2a"


def test_request_blocks_of_the_rfc_share_one_dynamic_table() -> None:
    # C.3 (no Huffman), then C.4 (Huffman) on a second decoder: three requests each.
    plain = [
        "828684410f7777772e6578616d706c652e636f6d",
        "828684be58086e6f2d6361636865",
        "828785bf400a637573746f6d2d6b65790c637573746f6d2d76616c7565",
    ]
    huffman = [
        "828684418cf1e3c2e5f23a6ba0ab90f4ff",
        "828684be5886a8eb10649cbf",
        "828785bf408825a849e95ba97d7f8925a849e95bb8e8b4bf",
    ]
    for blocks in (plain, huffman):
        decoder = HeaderDecoder()
        first, second, third = (decoder.decode(bytes.fromhex(b)) for b in blocks)

        assert first == [
            (":method", "GET"),
            (":scheme", "http"),
            (":path", "/"),
            (":authority", "www.example.com"),
        ]
        assert second == [*first, ("cache-control", "no-cache")]
        assert third == [
            (":method", "GET"),
            (":scheme", "https"),
            (":path", "/index.html"),
            (":authority", "www.example.com"),
            ("custom-key", "custom-value"),
        ]
        # The table holds custom-key, cache-control and :authority (RFC: size 164).
        assert decoder._size == 164


def test_a_response_block_evicts_what_the_table_size_no_longer_holds() -> None:
    # C.5.1 and C.5.2: responses with a 256-byte table; the second evicts the oldest entry.
    decoder = HeaderDecoder()
    decoder.decode(bytes.fromhex("3fe101"))  # table size update to 256 first
    first = decoder.decode(
        bytes.fromhex(
            "4803333032580770726976617465611d4d6f6e2c203231204f637420323031332032303a31333a"
            "323120474d546e1768747470733a2f2f7777772e6578616d706c652e636f6d"
        )
    )
    second = decoder.decode(bytes.fromhex("4803333037c1c0bf"))

    assert first[0] == (":status", "302")
    assert second == [
        (":status", "307"),
        ("cache-control", "private"),
        ("date", "Mon, 21 Oct 2013 20:13:21 GMT"),
        ("location", "https://www.example.com"),
    ]
    assert decoder._size == 222


def test_what_we_encode_reads_back_and_leaves_the_table_alone() -> None:
    fields = [(":path", "/pinnace.v1.ClusterService/ApplyManifests"), ("te", "trailers")]
    decoder = HeaderDecoder()

    assert decoder.decode(encode_headers(fields)) == fields
    assert decoder._size == 0


def test_broken_blocks_are_errors_not_guesses() -> None:
    with pytest.raises(HpackError):
        HeaderDecoder().decode(bytes([0x80 | 70]))  # index 70: the dynamic table is empty
    with pytest.raises(HpackError):
        HeaderDecoder().decode(b"\x00\x05ab")  # a name shorter than its length
    with pytest.raises(HpackError):
        HeaderDecoder(max_table_size=100).decode(bytes.fromhex("3fe101"))  # 256 > 100


def test_the_static_table_is_the_rfcs() -> None:
    assert len(STATIC_TABLE) == 61
    assert STATIC_TABLE[16 - 1] == ("accept-encoding", "gzip, deflate")
    assert STATIC_TABLE[31 - 1] == ("content-type", "")
    assert STATIC_TABLE[58 - 1] == ("user-agent", "")
    assert STATIC_TABLE[61 - 1] == ("www-authenticate", "")
