"""Counts the Docker Engine API calls pinnace's agent makes for one apply -> N running.

Run as `python -m tests.bench.engine_calls [--replicas 3] [--trials 3] [--source TREE]`.
The agent is started with DOCKER_HOST on a socket of this process's (`CallProxy`), which
passes every byte on to the engine's own socket and writes down each request line it sees
go up (method, path, when) and when its answer's status line came back, per connection
(answers on one connection come in order). A trial is apply_to_running's pinnace trial
(tests/bench/pinnace_side.py, the CLI, master and agent as users run them); its calls are
counted from the ask to the last container's StartedAt (the table's clock) and to `get
pods` confirming all N Running, by kind (`POST /containers/{id}/start`...), and the inspects
that took the engine longer than 50 ms are counted apart (an inspect of a container whose
start is under way waits for it). The bench's own engine calls (its polls, its reads of the
events) go to the engine directly and are not counted. For comparison, 3 parallel `docker
run -d` make 4 calls a container (`HEAD /_ping`, create, wait, start).

Parsing is pure (tested with plain bytes and tuples); only `CallProxy` touches sockets.
Everything started is stopped as apply_to_running stops it (PinnaceBench.close); the proxy's
threads are daemons and its socket is removed with the tmp dir.
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import os
import re
import shutil
import socket
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import docker

from tests.bench.engine import BenchError, clear_for_trial
from tests.bench.pinnace_side import PinnaceBench
from tests.bench.procs import REPO

_REQUEST = re.compile(rb"(GET|POST|PUT|DELETE|HEAD) (/\S*) HTTP/1\.[01]\r\n")
_STATUS = re.compile(rb"HTTP/1\.[01] \d{3} ")
# An inspect slower than this waited for something (a start holding the container).
SLOW_INSPECT = 0.05


@dataclass(slots=True)
class Call:
    """One request as it went up, and how long until its answer's status line came back
    (None: no answer seen)."""

    at: float
    connection: int
    method: str
    path: str
    took: float | None = None

    @property
    def kind(self) -> str:
        return call_kind(self.method, self.path)


def request_lines(buffer: bytes) -> tuple[list[tuple[str, str]], bytes]:
    """The complete request lines in `buffer` (method, path), and the tail to keep for the
    next chunk (a request line may be cut between two reads)."""
    found: list[tuple[str, str]] = []
    end = 0
    for match in _REQUEST.finditer(buffer):
        found.append((match.group(1).decode(), match.group(2).decode()))
        end = match.end()
    tail = buffer[end:]
    # A cut request line is at most a few KiB long; a body is never kept whole.
    return found, tail[-8192:]


def status_lines(chunk: bytes) -> int:
    """How many answers begin in `chunk` (their status lines)."""
    return len(_STATUS.findall(chunk))


def call_kind(method: str, path: str) -> str:
    """`POST /v1.41/containers/3f2a.../start?x=1` -> `POST /containers/{id}/start`."""
    path = path.split("?", 1)[0]
    path = re.sub(r"^/v\d+\.\d+", "", path)
    path = re.sub(r"^/containers/(?!json$|create$|prune$)[^/]+", "/containers/{id}", path)
    path = re.sub(
        r"^/images/(?!json$|create$|load$|search$|prune$).+/json$", "/images/{ref}/json", path
    )
    return f"{method} {path}"


def count_calls(calls: Iterable[Call], since: float, until: float) -> collections.Counter[str]:
    """The calls that went up in [since, until], by kind."""
    return collections.Counter(c.kind for c in calls if since <= c.at <= until)


def slow_inspects(calls: Iterable[Call], since: float, until: float) -> int:
    """Container inspects in [since, until] that took the engine longer than SLOW_INSPECT."""
    return sum(
        1
        for c in calls
        if since <= c.at <= until
        and c.kind == "GET /containers/{id}/json"
        and c.took is not None
        and c.took > SLOW_INSPECT
    )


class CallProxy:
    """A Unix socket at `path` in front of the engine's (`upstream`), writing down calls."""

    def __init__(self, path: Path, upstream: str = "/var/run/docker.sock") -> None:
        self.path, self.upstream = path, upstream
        self.calls: list[Call] = []
        self._waiting: dict[int, collections.deque[Call]] = {}
        self._lock = threading.Lock()
        self._connections = 0
        self._server = socket.socket(socket.AF_UNIX)
        self._server.bind(str(path))
        self._server.listen(256)
        threading.Thread(target=self._accept, name="call-proxy", daemon=True).start()

    def snapshot(self) -> list[Call]:
        with self._lock:
            return list(self.calls)

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self._server.accept()
            except OSError:
                return
            engine = socket.socket(socket.AF_UNIX)
            engine.connect(self.upstream)
            self._connections += 1
            n = self._connections
            threading.Thread(target=self._up, args=(client, engine, n), daemon=True).start()
            threading.Thread(target=self._down, args=(engine, client, n), daemon=True).start()

    def _up(self, source: socket.socket, sink: socket.socket, n: int) -> None:
        tail = b""
        with _pipe(source, sink):
            while chunk := source.recv(65536):
                now = time.time()
                found, tail = request_lines(tail + chunk)
                with self._lock:
                    for method, path in found:
                        call = Call(now, n, method, path)
                        self.calls.append(call)
                        self._waiting.setdefault(n, collections.deque()).append(call)
                sink.sendall(chunk)

    def _down(self, source: socket.socket, sink: socket.socket, n: int) -> None:
        with _pipe(source, sink):
            while chunk := source.recv(65536):
                now = time.time()
                with self._lock:
                    waiting = self._waiting.get(n)
                    for _ in range(status_lines(chunk)):
                        if waiting:
                            call = waiting.popleft()
                            call.took = now - call.at
                sink.sendall(chunk)

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self._server.close()


@contextlib.contextmanager
def _pipe(source: socket.socket, sink: socket.socket) -> Iterator[None]:
    try:
        yield
    except OSError:
        pass
    finally:
        for s in (source, sink):
            with contextlib.suppress(OSError):
                s.shutdown(socket.SHUT_RDWR)


def _table(counts: Sequence[collections.Counter[str]], pods: int) -> list[str]:
    kinds = sorted({k for c in counts for k in c}, key=lambda k: -sum(c[k] for c in counts))
    lines = []
    for kind in kinds:
        per_trial = [c[kind] for c in counts]
        lines.append(
            f"  {sum(per_trial) / len(per_trial):7.1f}  ({min(per_trial)}-{max(per_trial)})  {kind}"
        )
    totals = [sum(c.values()) for c in counts]
    mean = sum(totals) / len(totals)
    lines.append(f"  {mean:7.1f}  ({min(totals)}-{max(totals)})  all, {mean / pods:.1f} a pod")
    return lines


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m tests.bench.engine_calls",
        description="Count the engine API calls of pinnace's agent for apply -> N running.",
    )
    parser.add_argument("--replicas", type=int, default=3)
    parser.add_argument("--trials", type=int, default=3)
    parser.add_argument("--source", type=Path, default=REPO, help="the pinnace tree to run")
    parser.add_argument("--timeout", type=float, default=180.0)
    args = parser.parse_args(argv)
    run_id = uuid.uuid4().hex[:6]
    workdir = Path(tempfile.mkdtemp(prefix=f"pinnace-calls-{run_id}-"))
    proxy = CallProxy(workdir / "engine.sock")
    client = docker.from_env()
    bench = PinnaceBench(client, run_id, workdir, source=args.source.resolve())
    bench.procs.env["DOCKER_HOST"] = f"unix://{proxy.path}"
    to_start: list[collections.Counter[str]] = []
    to_api: list[collections.Counter[str]] = []
    slow: list[int] = []
    try:
        bench.start(timeout=60.0)
        print(f"tree {args.source}; load {os.getloadavg()[0]:.1f}; N={args.replicas}")
        for trial in range(1, args.trials + 1):
            clear_for_trial(client, [bench.node_label])
            name = f"calls-{run_id}-{trial}"
            ask = time.time()
            bench.timed_apply(name, args.replicas, args.timeout)
            phases, calls = bench.phases[name], proxy.snapshot()
            to_start.append(count_calls(calls, ask, ask + phases.engine_running))
            to_api.append(count_calls(calls, ask, ask + phases.api_running))
            slow.append(slow_inspects(calls, ask, ask + phases.api_running))
            print(
                f"  trial {trial}: {sum(to_start[-1].values())} calls to the last start "
                f"({phases.engine_running:.3f} s), {sum(to_api[-1].values())} to all Running "
                f"in the API ({phases.api_running:.3f} s), {slow[-1]} inspects > 50 ms",
                flush=True,
            )
    except BenchError as e:
        print(f"failed: {e}; logs in {workdir}", file=sys.stderr)
        return 1
    finally:
        bench.close()
        proxy.close()
        client.close()
    print(f"calls from the ask to the last container's StartedAt, mean (min-max) of {args.trials}:")
    print("\n".join(_table(to_start, args.replicas)))
    print("... to `get pods` showing all Running:")
    print("\n".join(_table(to_api, args.replicas)))
    print(f"inspects > 50 ms: {slow}")
    shutil.rmtree(workdir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
