"""HPACK (RFC 7541), the header coding of HTTP/2, as much as one gRPC call needs.

`pinnace apply` sends its one call over HTTP/2 itself (master/cli/h2_unary.py says why),
so it writes the request's headers and reads the master's. Writing is the simplest form
HPACK has: every field a literal without indexing and without Huffman coding, which any
decoder reads and which leaves the peer's table untouched. Reading must take whatever
the master's gRPC library chooses: indexed fields from the static table and from the
dynamic table the encoder fills, literals with or without indexing, table size updates,
and Huffman-coded strings. The decoder keeps that dynamic table for the connection's
life (one `HeaderDecoder` per connection).

The Huffman code is RFC 7541's Appendix B, a canonical code: it is written here as the
code length of each of the 257 symbols, and the codes follow from the lengths (every
code of one length, in symbol order, is the previous one plus one; a longer code starts
from the next value shifted left). tests/unit/test_cli_hpack.py checks the RFC's
examples.
"""

from __future__ import annotations

# RFC 7541 Appendix A, entries 15-61: names whose entry has no value but accept-encoding's.
# fmt: off
_NAMES_WITHOUT_VALUE = (
    "accept-charset", "accept-encoding", "accept-language", "accept-ranges", "accept",
    "access-control-allow-origin", "age", "allow", "authorization", "cache-control",
    "content-disposition", "content-encoding", "content-language", "content-length",
    "content-location", "content-range", "content-type", "cookie", "date", "etag", "expect",
    "expires", "from", "host", "if-match", "if-modified-since", "if-none-match", "if-range",
    "if-unmodified-since", "last-modified", "link", "location", "max-forwards",
    "proxy-authenticate", "proxy-authorization", "range", "referer", "refresh",
    "retry-after", "server", "set-cookie", "strict-transport-security",
    "transfer-encoding", "user-agent", "vary", "via", "www-authenticate",
)
# fmt: on
# RFC 7541 Appendix A: the static table; index 1 is the first entry.
STATIC_TABLE: tuple[tuple[str, str], ...] = (
    (":authority", ""),
    (":method", "GET"),
    (":method", "POST"),
    (":path", "/"),
    (":path", "/index.html"),
    (":scheme", "http"),
    (":scheme", "https"),
    (":status", "200"),
    (":status", "204"),
    (":status", "206"),
    (":status", "304"),
    (":status", "400"),
    (":status", "404"),
    (":status", "500"),
    *(
        (name, "gzip, deflate" if name == "accept-encoding" else "")
        for name in _NAMES_WITHOUT_VALUE
    ),
)

# RFC 7541 Appendix B: the code length in bits of symbols 0-255 and EOS (256).
# fmt: off
_LENGTHS = (
    13, 23, *[28] * 7, 24, 30, 28, 28, 30, *[28] * 8, 30, *[28] * 9,  # 0-31
    6, 10, 10, 12, 13, 6, 8, 11, 10, 10, 8, 11, 8, 6, 6, 6, 5, 5, 5, *[6] * 7,  # ' '-'9'
    7, 8, 15, 6, 12, 10, 13, 6, *[7] * 22, 8, 7, 8, 13, 19, 13, 14, 6, 15,  # ':'-'`'
    5, 6, 5, 6, 5, 6, 6, 6, 5, 7, 7, 6, 6, 6, 5, 6, 7, 6, 5, 5, 6, 7, 7, 7, 7, 7,  # a-z
    15, 11, 14, 13, 28,  # '{' - 127
    20, 22, 20, 20, 22, 22, 22, 23, 22, 23, 23, 23, 23, 23, 24, 23, 24, 24, 22, 23,
    24, 23, 23, 23, 23, 21, 22, 23, 22, 23, 23, 24, 22, 21, 20, 22, 22, 23, 23, 21,
    23, 22, 22, 24, 21, 22, 23, 23, 21, 21, 22, 21, 23, 22, 23, 23, 20, 22, 22, 22,
    23, 22, 22, 23, 26, 26, 20, 19, 22, 23, 22, 25, 26, 26, 26, 27, 27, 26, 24, 25,
    19, 21, 26, 27, 27, 26, 27, 24, 21, 21, 26, 26, 28, 27, 27, 27, 20, 24, 20, 21,
    22, 21, 21, 23, 22, 22, 25, 25, 24, 24, 26, 23, 26, 27, 26, 26, 27, 27, 27, 27,
    27, 28, 27, 27, 27, 27, 27, 26, 30,  # ... 255, EOS
)
# fmt: on
EOS = 256
# An entry's size in the dynamic table is its name and value plus this (RFC 7541 4.1).
ENTRY_OVERHEAD = 32
DEFAULT_TABLE_SIZE = 4096


class HpackError(ValueError):
    """A header block that is not valid HPACK (a connection error in HTTP/2)."""


def huffman_codes() -> dict[tuple[int, int], int]:
    """(length, code) -> symbol, for every symbol of the canonical code."""
    order = sorted(range(len(_LENGTHS)), key=lambda s: (_LENGTHS[s], s))
    codes: dict[tuple[int, int], int] = {}
    code, previous = -1, _LENGTHS[order[0]]
    for symbol in order:
        length = _LENGTHS[symbol]
        code = (code + 1) << (length - previous)
        previous = length
        codes[(length, code)] = symbol
    return codes


_DECODE: dict[tuple[int, int], int] | None = None


def huffman_decode(data: bytes) -> bytes:
    """A Huffman-coded string's bytes. The padding must be fewer than 8 bits, all ones (a
    prefix of EOS), and EOS itself must not appear (RFC 7541 5.2)."""
    global _DECODE
    if _DECODE is None:
        _DECODE = huffman_codes()
    table = _DECODE
    out = bytearray()
    code = length = 0
    for byte in data:
        for shift in range(7, -1, -1):
            code = (code << 1) | ((byte >> shift) & 1)
            length += 1
            symbol = table.get((length, code)) if length >= 5 else None
            if symbol is None:
                if length > 30:
                    raise HpackError("a Huffman code longer than any symbol's")
                continue
            if symbol == EOS:
                raise HpackError("EOS inside a Huffman-coded string")
            out.append(symbol)
            code = length = 0
    if length > 7 or code != (1 << length) - 1:
        raise HpackError("a Huffman-coded string's padding is not a prefix of EOS")
    return bytes(out)


def encode_integer(value: int, prefix_bits: int, first: int = 0) -> bytes:
    """An integer with an N-bit prefix (RFC 7541 5.1); `first` holds the byte's high bits."""
    limit = (1 << prefix_bits) - 1
    if value < limit:
        return bytes([first | value])
    out = bytearray([first | limit])
    value -= limit
    while value >= 0x80:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def _string(text: str) -> bytes:
    raw = text.encode()
    return encode_integer(len(raw), 7) + raw


def encode_headers(fields: list[tuple[str, str]]) -> bytes:
    """A header block: each field a literal without indexing, name and value as they are."""
    return b"".join(b"\x00" + _string(name) + _string(value) for name, value in fields)


class HeaderDecoder:
    """Reads header blocks of one connection; keeps the dynamic table between them."""

    def __init__(self, max_table_size: int = DEFAULT_TABLE_SIZE) -> None:
        # The most the encoder may make the table (what we announced; HPACK's default).
        self._limit = max_table_size
        self._max_size = max_table_size
        self._table: list[tuple[str, str]] = []  # newest first
        self._size = 0

    def _integer(self, data: bytes, pos: int, prefix_bits: int) -> tuple[int, int]:
        if pos >= len(data):
            raise HpackError("a header block ends inside an integer")
        limit = (1 << prefix_bits) - 1
        value = data[pos] & limit
        pos += 1
        if value < limit:
            return value, pos
        shift = 0
        while True:
            if pos >= len(data) or shift > 28:
                raise HpackError("a header block ends inside an integer, or it is too long")
            byte = data[pos]
            pos += 1
            value += (byte & 0x7F) << shift
            shift += 7
            if not byte & 0x80:
                return value, pos

    def _string(self, data: bytes, pos: int) -> tuple[str, int]:
        if pos >= len(data):
            raise HpackError("a header block ends before a string")
        huffman = bool(data[pos] & 0x80)
        size, pos = self._integer(data, pos, 7)
        end = pos + size
        if end > len(data):
            raise HpackError("a header block ends inside a string")
        raw = huffman_decode(data[pos:end]) if huffman else data[pos:end]
        return raw.decode("utf-8", "replace"), end

    def _entry(self, index: int) -> tuple[str, str]:
        if 1 <= index <= len(STATIC_TABLE):
            return STATIC_TABLE[index - 1]
        dynamic = index - len(STATIC_TABLE) - 1
        if 0 <= dynamic < len(self._table):
            return self._table[dynamic]
        raise HpackError(f"header table index {index} is not in the table")

    def _add(self, field: tuple[str, str]) -> None:
        size = len(field[0].encode()) + len(field[1].encode()) + ENTRY_OVERHEAD
        self._table.insert(0, field)
        self._size += size
        self._evict()

    def _evict(self) -> None:
        while self._size > self._max_size and self._table:
            name, value = self._table.pop()
            self._size -= len(name.encode()) + len(value.encode()) + ENTRY_OVERHEAD

    def decode(self, block: bytes) -> list[tuple[str, str]]:
        """The fields of one complete header block, in order."""
        fields: list[tuple[str, str]] = []
        pos = 0
        while pos < len(block):
            byte = block[pos]
            if byte & 0x80:  # indexed field
                index, pos = self._integer(block, pos, 7)
                fields.append(self._entry(index))
                continue
            if byte & 0xE0 == 0x20:  # dynamic table size update
                size, pos = self._integer(block, pos, 5)
                if size > self._limit:
                    raise HpackError(f"table size {size} exceeds the {self._limit} allowed")
                self._max_size = size
                self._evict()
                continue
            indexing = bool(byte & 0x40)
            index, pos = self._integer(block, pos, 6 if indexing else 4)
            if index:
                name = self._entry(index)[0]
            else:
                name, pos = self._string(block, pos)
            value, pos = self._string(block, pos)
            fields.append((name, value))
            if indexing:
                self._add((name, value))
        return fields
