"""A thread that ends the agent's connections to the master when its event loop is wedged.

The decision is agent/state/loopwatch.py's (why a wedged agent must be found this way,
and how a starved one is told from it); this module is its edge. The loop stamps a
tick every period (a `call_later` chain); a daemon thread looks every period and, on a
`Wedged` verdict, logs where the loop's thread is stuck and shuts down (SHUT_RDWR)
every TCP connection of this process to a master address: the kernel sends the
master a FIN, its stream for this node ends, and the node is NotReady a session grace
later, as when the agent dies. The agent's own gRPC core finds the connection gone, so
once the loop runs again the session fails and the agent registers again (Ready). On
`Recovered` it hands the agent a notice for the master's events (`on_recovered`,
called on the loop).

Shutting a socket down through a duplicate of its descriptor is the one way a thread
can end a gRPC connection owned by a loop that does not run: `shutdown` acts on the
connection, not on the descriptor, and closing the duplicate leaves gRPC's own
descriptor for gRPC to close.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import sys
import threading
import time
import traceback
from collections.abc import Callable, Sequence

import psutil

from agent.state.loopwatch import (
    LoopWatchSettings,
    Recovered,
    Wedged,
    look,
    start_watch,
)

log = logging.getLogger("pinnace.agent")


def master_endpoints(masters: Sequence[str]) -> set[tuple[str, int]]:
    """The (IP, port) pairs the master addresses ("HOST:PORT", several) resolve to."""
    endpoints: set[tuple[str, int]] = set()
    for target in masters:
        host, _, port = target.strip().rpartition(":")
        host = host.strip("[]")
        if not host or not port.isdigit():
            continue
        with contextlib.suppress(OSError):
            for info in socket.getaddrinfo(host, int(port), proto=socket.IPPROTO_TCP):
                endpoints.add((str(info[4][0]), int(port)))
    return endpoints


def unmapped(ip: str) -> str:
    """An IPv4-mapped IPv6 address as its IPv4 one: gRPC's core connects through dual-stack
    sockets, so its connection to 127.0.0.1 shows as ::ffff:127.0.0.1."""
    return ip.removeprefix("::ffff:") if ip.startswith("::ffff:") and "." in ip else ip


def end_connections(endpoints: set[tuple[str, int]]) -> int:
    """Shut down this process's established TCP connections to `endpoints`; how many."""
    ended = 0
    for conn in psutil.Process().net_connections(kind="tcp"):
        if conn.status != psutil.CONN_ESTABLISHED or not conn.raddr or conn.fd < 0:
            continue
        if (unmapped(conn.raddr.ip), conn.raddr.port) not in endpoints:
            continue
        with contextlib.suppress(OSError):
            dup = socket.socket(fileno=os.dup(conn.fd))
            try:
                dup.shutdown(socket.SHUT_RDWR)
                ended += 1
            finally:
                dup.close()
    return ended


class LoopWatchdog:
    """Ticks on `loop`, watches from a daemon thread; `stop` ends both."""

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        masters: Sequence[str],
        settings: LoopWatchSettings | None = None,
        on_recovered: Callable[[float], None] | None = None,
    ) -> None:
        self._loop = loop
        self._masters = list(masters)
        self._settings = settings or LoopWatchSettings()
        self._on_recovered = on_recovered
        self._tick_at = time.monotonic()
        self._stopped = threading.Event()
        self._loop_thread = threading.get_ident()
        self._handle: asyncio.TimerHandle | None = None
        self._thread = threading.Thread(target=self._watch, name="loop-watchdog", daemon=True)

    def start(self) -> None:
        """Called on the loop's thread."""
        self._loop_thread = threading.get_ident()
        self._tick()
        self._thread.start()

    def stop(self) -> None:
        self._stopped.set()
        if self._handle is not None:
            self._handle.cancel()

    def _tick(self) -> None:
        self._tick_at = time.monotonic()
        self._handle = self._loop.call_later(self._settings.period, self._tick)

    def _watch(self) -> None:
        watch = start_watch(time.monotonic())
        while not self._stopped.wait(self._settings.period):
            if not self._loop.is_running():
                return  # the agent is gone (asyncio.run returned): nothing to watch
            watch, verdict = look(watch, time.monotonic(), self._tick_at, self._settings)
            if isinstance(verdict, Wedged):
                self._wedged(verdict)
            elif isinstance(verdict, Recovered):
                log.warning(
                    "the agent's event loop runs again after %.1fs; registering again",
                    verdict.stalled_for,
                )
                if self._on_recovered is not None:
                    with contextlib.suppress(RuntimeError):  # the loop is closed
                        self._loop.call_soon_threadsafe(self._on_recovered, verdict.stalled_for)

    def _wedged(self, verdict: Wedged) -> None:
        frame = sys._current_frames().get(self._loop_thread)
        where = (
            "".join(traceback.format_list(traceback.extract_stack(frame)[-4:]))
            if frame is not None
            else "?"
        )
        ended = end_connections(master_endpoints(self._masters))
        log.warning(
            "the agent's event loop has not run for %.1fs: ended its %d connection(s) to the "
            "master so the master sees this node gone until the loop runs again; stuck at:\n%s",
            verdict.silent_for,
            ended,
            where,
        )
