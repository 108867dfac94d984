"""gRPC's wake-up bytes drained whole (master/grpc_wakeups.py): the pure parts, and the
wrapped reader on a real socketpair."""

from __future__ import annotations

import asyncio
import functools
import socket

import grpc

from master.grpc_wakeups import bytes_to_drain, drain_grpc_wakeups, is_grpc_reader


def test_all_bytes_but_the_one_grpc_reads_are_taken() -> None:
    assert bytes_to_drain(0) == 0
    assert bytes_to_drain(1) == 0
    assert bytes_to_drain(278) == 277


class _Queue:
    """Stands in for PollerCompletionQueue: its reader takes one byte and every event."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.queued = 0
        self.handled = 0
        self.calls = 0

    def _handle_events(self, loop: object) -> None:
        self.sock.recv(1)  # raises BlockingIOError on an empty socket, as gRPC's does
        self.calls += 1
        self.handled += self.queued
        self.queued = 0


def test_grpc_reader_is_known_by_name_through_its_partial() -> None:
    read, write = socket.socketpair()
    with read, write:
        queue = _Queue(read)
        assert is_grpc_reader(functools.partial(queue._handle_events, None))
        assert not is_grpc_reader(functools.partial(print, None))


def test_wrapped_reader_empties_the_socket_in_one_turn() -> None:
    async def run() -> tuple[int, int, int]:
        loop = asyncio.get_running_loop()
        read, write = socket.socketpair()
        read.setblocking(False)
        queue = _Queue(read)
        loop.add_reader(read, functools.partial(queue._handle_events, loop))
        assert drain_grpc_wakeups(loop)
        # 200 completions came while the loop was busy: 200 events, a byte each.
        queue.queued = 200
        write.send(b"1" * 200)
        for _ in range(5):
            await asyncio.sleep(0)
        left = len(read.recv(4096)) if _readable(read) else 0
        loop.remove_reader(read)
        read.close()
        write.close()
        return queue.calls, queue.handled, left

    calls, handled, left = asyncio.run(run())
    # gRPC's own reader took one byte a turn: 195 bytes left after five turns, the
    # poller thread blocked in write() once 278 had piled up.
    assert (calls, handled, left) == (1, 200, 0)


def _readable(sock: socket.socket) -> bool:
    try:
        sock.recv(1, socket.MSG_PEEK)
    except BlockingIOError:
        return False
    return True


def test_an_empty_socket_does_not_call_grpcs_reader() -> None:
    async def run() -> int:
        loop = asyncio.get_running_loop()
        read, write = socket.socketpair()
        read.setblocking(False)
        queue = _Queue(read)
        loop.add_reader(read, functools.partial(queue._handle_events, loop))
        assert drain_grpc_wakeups(loop)
        handle = loop._selector.get_map()[read.fileno()].data[0]  # type: ignore[attr-defined]
        handle._run()  # woken with nothing to read (another loop took the byte)
        loop.remove_reader(read)
        read.close()
        write.close()
        return queue.calls

    assert asyncio.run(run()) == 0


def test_grpc_aio_reader_is_found_on_a_servers_loop() -> None:
    """Guards the name this module looks for: a gRPC whose reader is called otherwise
    would leave the master undrained (and this test red)."""

    async def run() -> bool:
        server = grpc.aio.server()
        try:
            return drain_grpc_wakeups(asyncio.get_running_loop())
        finally:
            await server.stop(None)

    assert asyncio.run(run())
