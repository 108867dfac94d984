"""The disruption tests' traffic (tests/integration/traffic.py) excuses only an answer cut
short by a hard kill it was in flight during, at most one a killed server."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext

import pytest

from tests.integration.cluster import wait_for
from tests.integration.traffic import Failure, HardKill, excused, steady_load


def _cut(started: float, ended: float) -> Failure:
    return Failure(started, ended, "IncompleteRead(0 bytes read, 210 more expected)", True)


def test_an_answer_cut_during_a_kill_is_excused_and_nothing_else() -> None:
    kill = HardKill(10.0, 10.2, 1)
    during = _cut(9.99, 10.1)
    before = _cut(9.0, 9.5)
    after = _cut(10.3, 10.4)
    refused = Failure(10.0, 10.1, "URLError(ConnectionRefusedError(111))", False)
    failures = [before, during, after, refused]

    assert excused(failures, [kill]) == {during}
    assert excused(failures, []) == set()


def test_a_kill_excuses_at_most_its_count_of_cut_answers() -> None:
    first, second, third = _cut(10.0, 10.05), _cut(10.06, 10.1), _cut(10.11, 10.15)

    assert excused([third, first, second], [HardKill(10.0, 10.2, 2)]) == {first, second}
    # Two kills of one server each excuse one apiece.
    assert excused([first, second], [HardKill(10.0, 10.2, 1), HardKill(10.0, 10.2, 1)]) == {
        first,
        second,
    }


@contextmanager
def _server() -> Iterator[tuple[str, threading.Event, threading.Event]]:
    """A 127.0.0.1 HTTP server that answers in full until the first event is set; the next
    request gets the headers and not the body (its server "killed" mid-answer), and the
    second event is set once that cut answer was sent."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(64)
    listener.settimeout(0.2)
    done, arm, cut = threading.Event(), threading.Event(), threading.Event()
    body = b'<b id="hostname">pod-a</b>'

    def serve() -> None:
        while not done.is_set():
            try:
                conn, _ = listener.accept()
            except TimeoutError:
                continue
            with conn:
                conn.recv(65536)
                head = b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\nConnection: close\r\n\r\n"
                if arm.is_set() and not cut.is_set():
                    conn.sendall(head % 210)
                    cut.set()
                else:
                    conn.sendall(head % len(body) + body)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{listener.getsockname()[1]}/", arm, cut
    finally:
        done.set()
        thread.join(timeout=5)
        listener.close()


def _run_with_cut(killed: bool) -> list[str]:
    with _server() as (url, arm, cut), steady_load(url, rate=100) as load:
        load.served_after(0, 3)
        with load.hard_kill() if killed else nullcontext():
            arm.set()
            wait_for("the cut answer", lambda: cut.is_set() and load.failures, timeout=10)
        load.served_after(load.ok, 5)
    assert "pod-a" in load.served_by
    return load.unexcused()


def test_a_real_cut_answer_fails_the_traffic_unless_a_hard_kill_was_under_way() -> None:
    assert _run_with_cut(killed=True) == []
    [failure] = _run_with_cut(killed=False)
    assert "IncompleteRead" in failure


def test_the_traffic_check_names_unexcused_failures() -> None:
    with _server() as (url, arm, cut), steady_load(url, rate=100) as load:
        arm.set()
        wait_for("the cut answer", lambda: cut.is_set() and load.failures, timeout=10)
    with pytest.raises(AssertionError, match="IncompleteRead"):
        load.check()
