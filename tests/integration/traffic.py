"""Steady HTTP traffic through a load balancer while the disruption tests break things.

One thread sends GETs at a fixed rate, a new connection each, and records every failure
with when its request started and ended. The tests ask that no request fail, with one
exception no proxy can avoid: a request whose server was SIGKILLed (`docker kill`, a
forced removal) after its answer had begun. HAProxy retries a request whose server died
before answering (`retry-on empty-response`), but once it has forwarded the answer's
headers the client has part of it and nothing can be retried; the client reads a short
body (`http.client.IncompleteRead`). Stop 36's CI met this once in 2,381 requests
(a 210-byte page whose headers came and body did not). A test names its hard kills with
`Load.hard_kill(count)`; only a cut-short answer to a request in flight during that kill
is excused, at most `count` of them (one load thread has one request in flight at a
time, and each killed server can cut at most the one it was answering). Every other
failure, and any failure outside a kill, fails the test.
"""

from __future__ import annotations

import http.client
import re
import threading
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

from tests.integration.cluster import wait_for

# nginx's and pinnace/httpd's pages name their hostname: the pod's name.
HOSTNAME = re.compile(r'hostname">([^<]+)<')


@dataclass(frozen=True)
class Failure:
    """One failed request: monotonic start and end, the error, and whether an answer had begun."""

    started: float
    ended: float
    error: str
    answer_begun: bool


@dataclass(frozen=True)
class HardKill:
    """A window in which the test SIGKILLed `count` servers of the traffic."""

    started: float
    ended: float
    count: int


def excused(failures: list[Failure], kills: list[HardKill]) -> set[Failure]:
    """The failures a hard kill explains: answers cut short of requests in flight while it
    happened, at most `count` a kill (the earliest first)."""
    out: set[Failure] = set()
    for kill in kills:
        during = [
            f
            for f in failures
            if f.answer_begun
            and f not in out
            and f.started <= kill.ended
            and f.ended >= kill.started
        ]
        out.update(sorted(during, key=lambda f: f.started)[: kill.count])
    return out


@dataclass
class Load:
    """GETs at `rate` a second from one thread, a new connection each, until stopped or
    `max_requests` were sent."""

    url: str
    rate: float = 200.0
    max_requests: int | None = None
    sent: int = 0
    ok: int = 0
    failures: list[Failure] = field(default_factory=list)
    kills: list[HardKill] = field(default_factory=list)
    served_by: set[str] = field(default_factory=set)
    started: float = field(default_factory=time.monotonic)
    _stop: threading.Event = field(default_factory=threading.Event)

    def run(self) -> None:
        self.started = time.monotonic()
        while not self._stop.is_set() and (
            self.max_requests is None or self.sent < self.max_requests
        ):
            delay = self.started + self.sent / self.rate - time.monotonic()
            if delay > 0 and self._stop.wait(delay):
                return
            self.sent += 1
            began = time.monotonic()
            try:
                with urllib.request.urlopen(self.url, timeout=5) as resp:
                    assert resp.status == 200, resp.status
                    self.served_by.update(HOSTNAME.findall(resp.read().decode()))
                self.ok += 1
            except Exception as e:
                cut = isinstance(e, http.client.IncompleteRead)
                self.failures.append(Failure(began, time.monotonic(), repr(e), cut))

    def stop(self) -> None:
        self._stop.set()

    def served_after(self, mark: int, count: int, timeout: float = 30.0) -> int:
        """Wait until `count` more requests than `mark` succeeded; returns the new mark."""
        wait_for(
            f"{count} more requests served (at {self.ok})",
            lambda: self.ok >= mark + count or bool(self.unexcused()),
            timeout,
            interval=0.05,
        )
        return self.ok

    @contextmanager
    def hard_kill(self, count: int = 1) -> Iterator[None]:
        """The body SIGKILLs `count` servers of this traffic (see the module's docstring)."""
        started = time.monotonic()
        try:
            yield
        finally:
            self.kills.append(HardKill(started, time.monotonic(), count))

    def unexcused(self) -> list[str]:
        """Every failure no hard kill explains, as `<seconds into the load> <error>`."""
        pardoned = excused(list(self.failures), list(self.kills))
        return [
            f"{f.ended - self.started:.2f}s {f.error}" for f in self.failures if f not in pardoned
        ]

    def check(self) -> None:
        """No request failed but those a hard kill explains."""
        failed = self.unexcused()
        assert failed == [], f"{len(failed)} of {self.sent} failed: {failed[:5]}"


@contextmanager
def steady_load(url: str, rate: float = 200.0, max_requests: int | None = None) -> Iterator[Load]:
    load = Load(url, rate, max_requests)
    thread = threading.Thread(target=load.run, daemon=True)
    thread.start()
    try:
        yield load
    finally:
        load.stop()
        thread.join(timeout=30)
