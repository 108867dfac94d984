"""A fixed-rate HTTP load generator with a record of every request, run as its own process.

The LB bench needs to know, per request, whether it succeeded and which pod answered (nginx's
page carries `hostname">` + the container's hostname), not peak throughput. So this is an open
loop: request i is started at `start + i / rate` whether or not earlier ones have finished, each
on a new connection (`Connection: close`), each bounded by a timeout. A request succeeds when the
answer is `200` with a complete body (as long as its Content-Length says).

`python -m tests.bench.lb_load --port P --rate R --min-count N --out FILE` runs until it has been
told to stop (a line on stdin, or stdin closed) *and* has sent at least N requests, or until
`--max-seconds`; then it waits for the requests in flight, writes one line per request to FILE
(`send done ok status host error`, times from `time.monotonic()`, which is one clock for every
process on Linux) and exits. `LoadProcess` is the bench's handle on such a process;
`read_records` parses the file back.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import re
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

HOSTNAME = re.compile(rb'hostname">([^<]+)<')
REQUEST = (
    b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nUser-Agent: pinnace-bench\r\nConnection: close\r\n\r\n"
)
REPO = Path(__file__).resolve().parents[2]


@dataclass(frozen=True, slots=True)
class Record:
    """One request: when it was sent and answered, and what came back."""

    send: float
    done: float
    ok: bool
    status: int
    host: str  # the answering container's hostname, "" when the page names none
    error: str  # why it failed, "" on success


def parse_response(data: bytes) -> tuple[bool, int, str, str]:
    """(ok, status, host, error) for one raw HTTP/1.1 response read until EOF."""
    head, sep, body = data.partition(b"\r\n\r\n")
    if not sep:
        return False, 0, "", f"incomplete response ({len(data)} bytes)"
    lines = head.split(b"\r\n")
    parts = lines[0].split()
    if len(parts) < 2 or not parts[1].isdigit():
        return False, 0, "", f"bad status line {lines[0][:60]!r}"
    status = int(parts[1])
    for line in lines[1:]:
        name, _, value = line.partition(b":")
        is_length = name.strip().lower() == b"content-length" and value.strip().isdigit()
        if is_length and len(body) < int(value):
            return False, status, "", f"truncated body ({len(body)}/{int(value)} bytes)"
    match = HOSTNAME.search(body)
    host = match.group(1).decode() if match else ""
    if status != 200:
        return False, status, host, f"status {status}"
    return True, status, host, ""


async def _one(port: int, timeout: float) -> tuple[bool, int, str, str]:
    writer = None
    try:
        async with asyncio.timeout(timeout):
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.write(REQUEST)
            await writer.drain()
            data = await reader.read(-1)
        return parse_response(data)
    except TimeoutError:
        return False, 0, "", f"timeout after {timeout:.0f}s"
    except OSError as e:
        return False, 0, "", f"{type(e).__name__}: {e.strerror or e}"
    finally:
        if writer is not None:
            writer.close()


async def generate(
    port: int,
    rate: float,
    min_count: int,
    max_seconds: float,
    timeout: float,
    stop: threading.Event,
) -> list[Record]:
    """Send at `rate` until (stopped and >= min_count sent) or max_seconds; every record."""
    records: list[Record] = []

    async def tracked(send: float) -> None:
        ok, status, host, error = await _one(port, timeout)
        records.append(Record(send, time.monotonic(), ok, status, host, error))

    tasks: set[asyncio.Task[None]] = set()
    start = time.monotonic()
    i = 0
    while time.monotonic() - start < max_seconds:
        if stop.is_set() and i >= min_count:
            break
        delay = start + i / rate - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        task = asyncio.create_task(tracked(time.monotonic()))
        tasks.add(task)
        task.add_done_callback(tasks.discard)
        i += 1
    if tasks:
        await asyncio.wait(tasks)
    return sorted(records, key=lambda r: r.send)


def format_record(r: Record) -> str:
    error = r.error.replace("\n", " ").replace("\t", " ")
    return f"{r.send:.6f}\t{r.done:.6f}\t{int(r.ok)}\t{r.status}\t{r.host or '-'}\t{error}"


def read_records(path: Path) -> list[Record]:
    records = []
    for line in path.read_text().splitlines():
        send, done, ok, status, host, error = line.split("\t", 5)
        records.append(
            Record(
                float(send), float(done), ok == "1", int(status), "" if host == "-" else host, error
            )
        )
    return records


def _watch_stdin(stop: threading.Event) -> None:
    # Any line, or EOF (the bench died), means stop.
    sys.stdin.readline()
    stop.set()


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.bench.lb_load")
    parser.add_argument("--port", type=int, required=True, help="target port on 127.0.0.1")
    parser.add_argument("--rate", type=float, default=250.0, help="requests per second")
    parser.add_argument("--min-count", type=int, default=0, help="send at least this many")
    parser.add_argument("--max-seconds", type=float, default=300.0, help="hard bound")
    parser.add_argument("--timeout", type=float, default=5.0, help="seconds per request")
    parser.add_argument("--out", type=Path, required=True, help="one line per request")
    args = parser.parse_args(argv)
    stop = threading.Event()
    threading.Thread(target=_watch_stdin, args=(stop,), daemon=True).start()
    records = asyncio.run(
        generate(args.port, args.rate, args.min_count, args.max_seconds, args.timeout, stop)
    )
    args.out.write_text("".join(format_record(r) + "\n" for r in records))
    print(f"{len(records)} sent, {sum(1 for r in records if not r.ok)} failed", flush=True)
    return 0


class LoadProcess:
    """The bench's handle on one generator process: start, stop, read its records."""

    def __init__(self, port: int, rate: float, min_count: int, max_seconds: float, out: Path):
        self.out = out
        self.rate = rate
        self.started = time.monotonic()
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "tests.bench.lb_load",
                f"--port={port}",
                f"--rate={rate}",
                f"--min-count={min_count}",
                f"--max-seconds={max_seconds}",
                f"--out={out}",
            ],
            stdin=subprocess.PIPE,
            stdout=subprocess.DEVNULL,
            cwd=REPO,
        )
        self.max_seconds = max_seconds

    def finish(self) -> list[Record]:
        """Tell it to stop (it still sends its minimum), wait, and read what it recorded."""
        self._signal_stop()
        self.proc.wait(timeout=self.max_seconds + 60)
        return read_records(self.out)

    def _signal_stop(self) -> None:
        if self.proc.stdin is not None and not self.proc.stdin.closed:
            with contextlib.suppress(BrokenPipeError):
                self.proc.stdin.write(b"stop\n")
                self.proc.stdin.close()

    def kill(self) -> None:
        """For cleanup paths: end it by PID now."""
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=10)
        if self.proc.stdin is not None and not self.proc.stdin.closed:
            with contextlib.suppress(BrokenPipeError):
                self.proc.stdin.close()


if __name__ == "__main__":
    sys.exit(main())
