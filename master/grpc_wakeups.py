"""gRPC's wake-ups of the event loop, drained whole: one loop turn delivers every completion.

grpc.aio (1.85) hands the loop its completions (a message read, a message sent, a call
come in) through a thread that polls gRPC core's completion queue without the GIL: it
queues each event and writes one byte to a socketpair the loop watches; the loop's reader
(`PollerCompletionQueue._handle_events`) takes ONE byte and every queued event. A socketpair
holds 278 one-byte writes on this machine's kernel (each write is a buffer of its own);
past them the poller thread blocks in write() until the loop takes a byte. So once more
than 278 completions came while the loop was busy, the poller delivers one event per turn
of the loop, and keeps the socket full for as long as events come faster than turns.

At 5,000 hollow nodes / 50,000 pods (tests/bench/hollow.py --trace) that was the apply's
wall: between two 20 ms steps of a controller pass the loop turns once, so through a pass
the master read some 50 completions a second for 5,000 sessions, their heartbeats read
up to 19 s late and the Running reports after the passes (py-spy: the poller thread
blocked in write() in 61 % of its samples).

So the reader is wrapped: it first takes all the bytes but one, then lets gRPC's reader
take the last and the whole queue. A byte is written only after its event is queued, so
every event whose byte is taken here is in the queue when gRPC's reader empties it.
"""

from __future__ import annotations

import asyncio
import fcntl
import logging
import socket
import struct
import termios
from collections.abc import Callable
from typing import Any

log = logging.getLogger(__name__)

# gRPC's reader, found by its name (a bound method of the Cython PollerCompletionQueue,
# bound to the loop with functools.partial).
_GRPC_READER = "_handle_events"


def bytes_to_drain(available: int) -> int:
    """Of `available` wake-up bytes, how many to take before gRPC's reader takes its one."""
    return max(0, available - 1)


def is_grpc_reader(callback: Callable[..., Any]) -> bool:
    """Whether a loop reader's callback is grpc.aio's completion-queue reader."""
    func = getattr(callback, "func", callback)
    return getattr(func, "__name__", "") == _GRPC_READER


def _available(sock: socket.socket) -> int:
    raw = fcntl.ioctl(sock.fileno(), termios.FIONREAD, b"\0\0\0\0")
    return int(struct.unpack("i", raw)[0])


def _drained(sock: socket.socket, reader: Callable[[], object]) -> None:
    available = _available(sock)
    if available == 0:
        return  # gRPC's reader would raise BlockingIOError on its recv(1)
    extra = bytes_to_drain(available)
    if extra:
        sock.recv(extra)
    reader()


def drain_grpc_wakeups(loop: asyncio.AbstractEventLoop) -> bool:
    """Wraps grpc.aio's reader on `loop` (bound once a server or channel was made in it) so
    that each call drains the wake-up socket; whether it was found (a loop without a
    selector, or a gRPC that wakes the loop otherwise, is left as it is)."""
    selector = getattr(loop, "_selector", None)
    if selector is None:
        log.info("gRPC wake-ups not drained: the event loop has no selector")
        return False
    for key in list(selector.get_map().values()):
        handle = key.data[0] if isinstance(key.data, tuple) else None
        callback = getattr(handle, "_callback", None)
        if callback is None or not is_grpc_reader(callback):
            continue
        sock = key.fileobj
        if not isinstance(sock, socket.socket):
            return False
        loop.remove_reader(key.fd)
        loop.add_reader(key.fd, _drained, sock, callback)
        return True
    log.info("gRPC wake-ups not drained: no gRPC reader on the event loop")
    return False
