"""Object uids: random (version 4) UUIDs, as Kubernetes gives every object it stores.

ClusterState.put gives each new object one. `uuid.uuid4()` asks the kernel for 16
random bytes per call and builds a UUID object only to print it: at 5 stores a pod
(the pod and its events) that was 3-7 % of the master's CPU from apply to Running.
Here the same random bytes are read from the kernel 4 KiB at a time and formatted
directly; the text is exactly `str(uuid.uuid4())`'s (version and variant bits set).

A forked child starts with an empty buffer (os.register_at_fork), so parent and
child never hand out the same bytes.
"""

from __future__ import annotations

import os
import threading

_BATCH = 256  # uids per read from the kernel (4 KiB)
_lock = threading.Lock()
_buffer = b""
_offset = 0


def _reset() -> None:
    global _buffer, _offset
    _buffer, _offset = b"", 0


os.register_at_fork(after_in_child=_reset)


def new_uid() -> str:
    """A fresh random UUID's text (`xxxxxxxx-xxxx-4xxx-Yxxx-xxxxxxxxxxxx`, Y one of 8, 9,
    a, b), as `str(uuid.uuid4())` gives it."""
    global _buffer, _offset
    with _lock:
        if _offset >= len(_buffer):
            _buffer, _offset = os.urandom(16 * _BATCH), 0
        raw = bytearray(_buffer[_offset : _offset + 16])
        _offset += 16
    raw[6] = (raw[6] & 0x0F) | 0x40  # version 4
    raw[8] = (raw[8] & 0x3F) | 0x80  # RFC 4122 variant
    h = raw.hex()
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"
