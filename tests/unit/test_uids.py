"""master.uids.new_uid: the text of a random version 4 UUID, never the same twice.

It reads the kernel's random bytes in batches instead of once per uid; these
tests fail if the text stops being what `str(uuid.uuid4())` gives (version and
variant bits, dashes, lower case), if a batch boundary repeats or drops bytes,
or if a forked child could hand out its parent's buffered bytes.
"""

from __future__ import annotations

import os
import re
import uuid

import pytest

from master import uids
from master.uids import new_uid

_SHAPE = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$")


def test_a_uid_is_a_version_4_uuid_in_its_usual_text() -> None:
    for _ in range(1000):
        text = new_uid()
        assert _SHAPE.match(text), text
        parsed = uuid.UUID(text)
        assert parsed.version == 4 and parsed.variant == uuid.RFC_4122
        assert str(parsed) == text


def test_uids_are_distinct_across_many_batches() -> None:
    count = uids._BATCH * 40 + 7
    assert len({new_uid() for _ in range(count)}) == count


def test_each_uid_takes_the_next_sixteen_bytes(monkeypatch: pytest.MonkeyPatch) -> None:
    # Known "random" bytes: the uids are exactly uuid.UUID(bytes=..., version=4), in order,
    # across a batch boundary.
    stream = bytes(range(256)) * (uids._BATCH // 8)
    monkeypatch.setattr(os, "urandom", lambda n: stream[:n])
    uids._reset()
    first = [new_uid() for _ in range(uids._BATCH + 2)]
    expected = [
        str(uuid.UUID(bytes=stream[i * 16 : i * 16 + 16], version=4)) for i in range(uids._BATCH)
    ]
    assert first[: uids._BATCH] == expected
    assert first[uids._BATCH :] == expected[:2]  # the next batch read afresh
    uids._reset()


def test_a_forked_child_starts_with_an_empty_buffer() -> None:
    new_uid()  # the parent holds buffered bytes
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: reports whether its buffer was emptied at fork
        os.write(write, b"empty" if uids._offset == 0 and uids._buffer == b"" else b"kept")
        os._exit(0)
    os.close(write)
    answer = os.read(read, 16)
    os.close(read)
    os.waitpid(pid, 0)
    assert answer == b"empty"
