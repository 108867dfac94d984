"""A TCP relay between a master and etcd that makes one write's outcome unknown.

etcd answers in milliseconds, and the master reads through a quorum just before
each transaction, so stopping etcd from outside lands before the read (nothing
sent: no doubt) far more often than between the read and the transaction. This
relay cuts the connection exactly there instead: the first client -> etcd bytes
holding `marker` (a name only the trapped write carries, readable in the
uncompressed gRPC message) spring the trap on that connection:

- "land": the request reaches etcd, which commits it, but no answer reaches the
  master (nor any later one on that connection): the write landed, unconfirmed.
- "lose": neither the request nor anything after it reaches etcd: it did not land.

Either way the master's call times out ("may or may not have been applied").
`cut()` then closes the trapped connection, so the master's next call connects
again and gets through. Threads and sockets are closed by `close()`.
"""

from __future__ import annotations

import contextlib
import socket
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

Mode = Literal["land", "lose"]


@dataclass
class _Connection:
    client: socket.socket
    upstream: socket.socket
    trapped: Mode | None = None


class EtcdTrap:
    def __init__(self, etcd_port: int) -> None:
        self._etcd_port = etcd_port
        self._server = socket.create_server(("127.0.0.1", 0))
        self.port = int(self._server.getsockname()[1])
        self._lock = threading.Lock()
        self._marker = b""
        self._mode: Mode = "land"
        self.sprung = threading.Event()
        self._trapped: list[socket.socket] = []
        self._open: list[socket.socket] = []
        self._threads: list[threading.Thread] = []
        self._closed = False
        self._start(self._accept)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def arm(self, marker: str, mode: Mode) -> None:
        with self._lock:
            self._marker, self._mode = marker.encode(), mode
            self.sprung.clear()

    def cut(self) -> None:
        """Close the trapped connection: the master's next call connects again."""
        with self._lock:
            trapped, self._trapped = self._trapped, []
        for s in trapped:
            _close(s)

    def close(self) -> None:
        self._closed = True
        _close(self._server)
        with self._lock:
            sockets = list(self._open)
        for s in sockets:
            _close(s)
        for t in self._threads:
            t.join(timeout=5)

    def _start(self, target: Callable[..., None], *args: Any) -> None:
        t = threading.Thread(target=target, args=args, daemon=True)
        self._threads.append(t)
        t.start()

    def _accept(self) -> None:
        while not self._closed:
            try:
                client, _ = self._server.accept()
            except OSError:
                return
            try:
                upstream = socket.create_connection(("127.0.0.1", self._etcd_port))
            except OSError:
                _close(client)
                continue
            conn = _Connection(client, upstream)
            with self._lock:
                self._open += [client, upstream]
            self._start(self._to_etcd, conn)
            self._start(self._to_master, conn)

    def _to_etcd(self, conn: _Connection) -> None:
        client, upstream = conn.client, conn.upstream
        tail = b""
        try:
            while data := client.recv(65536):
                if conn.trapped is None:
                    with self._lock:
                        marker = self._marker
                        if marker and marker in tail + data:
                            conn.trapped = self._mode
                            self._marker = b""
                            self._trapped += [client, upstream]
                            self.sprung.set()
                    tail = (tail + data)[-max(len(marker), 1) :] if marker else b""
                if conn.trapped == "lose":
                    continue  # nothing of it, nor anything after, reaches etcd
                upstream.sendall(data)
        except OSError:
            pass
        finally:
            _close(client)
            _close(upstream)

    def _to_master(self, conn: _Connection) -> None:
        client, upstream = conn.client, conn.upstream
        try:
            while data := upstream.recv(65536):
                if conn.trapped is not None:
                    continue  # etcd's answers are lost on the way
                client.sendall(data)
        except OSError:
            pass
        finally:
            _close(client)
            _close(upstream)


def _close(s: socket.socket) -> None:
    with contextlib.suppress(OSError):
        s.shutdown(socket.SHUT_RDWR)
    s.close()
