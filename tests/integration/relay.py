"""A TCP relay on 127.0.0.1 that a test can cut: a network cable pulled, in user space.

An agent given the relay's address as its master reaches the master through it.
`cut()` stops passing bytes both ways and keeps every socket open, so neither
side is told anything (no FIN, no RST): only unanswered keepalive pings or a
missing heartbeat can show the master that the node is gone, as with a dead
machine or a cut link. The relay's kernel still acknowledges the pings' TCP
segments, so the master finds this cut by the pings' missing HTTP/2 answers (1.5 s,
master/server.py), not by TCP_USER_TIMEOUT (2.5 s).
`close()` closes every socket and the listener.
"""

from __future__ import annotations

import select
import socket
import threading


class CutRelay:
    def __init__(self, target: str) -> None:
        host, _, port = target.rpartition(":")
        self._target = (host.strip("[]"), int(port))
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.address = f"127.0.0.1:{self._listener.getsockname()[1]}"
        self._cut = threading.Event()
        self._closed = threading.Event()
        self._sockets: list[socket.socket] = [self._listener]
        self._lock = threading.Lock()
        threading.Thread(target=self._accept, name="relay-accept", daemon=True).start()

    def cut(self) -> None:
        self._cut.set()

    def close(self) -> None:
        self._closed.set()
        with self._lock:
            for sock in self._sockets:
                sock.close()

    def _accept(self) -> None:
        while not self._closed.is_set():
            try:
                down, _ = self._listener.accept()
                up = socket.create_connection(self._target, timeout=10)
            except OSError:
                return
            with self._lock:
                self._sockets += [down, up]
            threading.Thread(target=self._pump, args=(down, up), daemon=True).start()

    def _pump(self, a: socket.socket, b: socket.socket) -> None:
        peer = {a: b, b: a}
        while not self._cut.is_set() and not self._closed.is_set():
            try:
                readable, _, _ = select.select([a, b], [], [], 0.1)
                for sock in readable:
                    if self._cut.is_set():
                        break
                    data = sock.recv(65536)
                    if not data:
                        peer[sock].close()
                        sock.close()
                        return
                    peer[sock].sendall(data)
            except (OSError, ValueError):
                return
