"""tests/bench/engine_calls.py: request lines found across reads, call kinds, counts, and the
proxy itself between a client and a stand-in engine on Unix sockets of the test's own."""

from __future__ import annotations

import socket
import tempfile
import threading
import time
from pathlib import Path

from tests.bench.engine_calls import (
    Call,
    CallProxy,
    call_kind,
    count_calls,
    request_lines,
    slow_inspects,
    status_lines,
)


def test_a_request_line_cut_between_two_reads_is_found_once_whole() -> None:
    first, tail = request_lines(b'{"a": 1}GET /v1.41/containers/js')
    second, tail = request_lines(tail + b"on?all=1 HTTP/1.1\r\nHost: docker\r\n\r\n")

    assert first == []
    assert second == [("GET", "/v1.41/containers/json?all=1")]
    assert b"GET" not in tail


def test_call_kinds_name_the_endpoint_not_the_container() -> None:
    cid = "3f2a" * 16
    assert call_kind("POST", f"/v1.41/containers/{cid}/start") == "POST /containers/{id}/start"
    assert call_kind("GET", f"/v1.41/containers/{cid}/json") == "GET /containers/{id}/json"
    assert call_kind("GET", "/v1.41/containers/json?all=1&filters=x") == "GET /containers/json"
    assert call_kind("POST", "/v1.41/containers/create?name=p") == "POST /containers/create"
    assert call_kind("GET", "/v1.41/images/nginx:latest/json") == "GET /images/{ref}/json"
    assert call_kind("POST", "/v1.41/images/create?fromImage=nginx") == "POST /images/create"
    assert call_kind("HEAD", "/_ping") == "HEAD /_ping"


def test_counts_keep_the_window_and_slow_inspects_are_those_over_50_ms() -> None:
    calls = [
        Call(10.0, 1, "GET", "/v1.41/containers/json", 0.001),
        Call(10.1, 2, "GET", "/v1.41/containers/abc/json", 0.2),
        Call(10.2, 3, "GET", "/v1.41/containers/abc/json", 0.01),
        Call(10.3, 4, "GET", "/v1.41/containers/abc/json", None),
        Call(12.0, 5, "POST", "/v1.41/containers/abc/start", 0.5),
    ]

    counts = count_calls(calls, 10.0, 11.0)

    assert counts == {"GET /containers/json": 1, "GET /containers/{id}/json": 3}
    assert slow_inspects(calls, 10.0, 11.0) == 1
    assert status_lines(b"HTTP/1.1 200 OK\r\n\r\nHTTP/1.1 204 No Content\r\n\r\n") == 2


def _engine(path: Path, stop: threading.Event) -> None:
    """Answers every request line on a connection with an empty 200, the second after 0.1 s."""
    server = socket.socket(socket.AF_UNIX)
    server.bind(str(path))
    server.listen(4)
    server.settimeout(0.1)
    while not stop.is_set():
        try:
            conn, _ = server.accept()
        except TimeoutError:
            continue
        with conn:
            answered = 0
            data = b""
            while answered < 2 and (chunk := conn.recv(4096)):
                data += chunk
                while b"\r\n\r\n" in data:
                    _, data = data.split(b"\r\n\r\n", 1)
                    if answered:
                        time.sleep(0.1)
                    conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")
                    answered += 1
    server.close()


def test_the_proxy_passes_calls_on_and_times_each_answer_on_one_connection() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        upstream, stop = Path(tmp) / "engine.sock", threading.Event()
        engine = threading.Thread(target=_engine, args=(upstream, stop), daemon=True)
        engine.start()
        deadline = time.monotonic() + 5
        while not upstream.exists() and time.monotonic() < deadline:
            time.sleep(0.01)
        proxy = CallProxy(Path(tmp) / "proxy.sock", str(upstream))
        try:
            with socket.socket(socket.AF_UNIX) as client:
                client.connect(str(proxy.path))
                client.sendall(b"GET /_ping HTTP/1.1\r\nHost: docker\r\n\r\n")
                client.sendall(b"POST /v1.41/containers/c1/start HTTP/1.1\r\nHost: d\r\n\r\n")
                answers = b""
                while answers.count(b"HTTP/1.1 200") < 2:
                    answers += client.recv(4096)
            deadline = time.monotonic() + 5
            while any(c.took is None for c in proxy.snapshot()) and time.monotonic() < deadline:
                time.sleep(0.01)
            calls = proxy.snapshot()
        finally:
            proxy.close()
            stop.set()
            engine.join(5)

    assert [c.kind for c in calls] == ["GET /_ping", "POST /containers/{id}/start"]
    assert calls[0].took is not None and calls[1].took is not None
    assert calls[1].took >= 0.09
