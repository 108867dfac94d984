"""Which session keepalive ends which stream: a slow agent's, or a cut link's.

A gRPC server with the master's keepalive options (master/server.py) holds one
stream from a client in another process. `stop`: the client is SIGSTOPped (alive,
its kernel still acknowledges TCP, its process answers nothing: an agent starved
of CPU on a loaded machine); `cut`: nft drops every packet of the connection on
127.0.0.1 (a cut link or a dead machine: nothing acknowledges anything). Prints
how long the server's stream lasted after each (at most `--wait` seconds), for
the master's options and for the old ones (a 10 s ping answer). Needs root and
nft for `cut`; removes its nft table and client process at the end.

    python -m tests.bench.keepalive_cut
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator

import grpc

from master.server import session_keepalive
from tests.bench.results import Figure, record, table

TABLE = "pinnace_keepalive_bench"
OLD = (
    ("grpc.keepalive_time_ms", 1000),
    ("grpc.keepalive_timeout_ms", 2500),
    ("grpc.http2.ping_timeout_ms", 10000),
    ("grpc.http2.max_pings_without_data", 0),
)


def client(target: str) -> None:
    async def main() -> None:
        channel = grpc.aio.insecure_channel(target)
        queue: asyncio.Queue[bytes] = asyncio.Queue()

        async def requests() -> AsyncIterator[bytes]:
            while True:
                yield await queue.get()

        call = channel.stream_stream("/bench.T/S")(requests())
        await queue.put(b"hello")
        await call.read()
        print("ready", flush=True)
        while await call.read() is not grpc.aio.EOF:
            pass

    asyncio.run(main())


def _nft(*args: str) -> None:
    subprocess.run(["nft", *args], check=True, capture_output=True)


async def one(options: tuple[tuple[str, int], ...], kind: str, wait: float) -> float:
    """Seconds the server's stream lasted after the client was stopped or cut (`wait`: it
    was still open)."""
    ended = asyncio.Event()

    async def handler(requests: AsyncIterator[bytes], context: object) -> AsyncIterator[bytes]:
        try:
            async for _ in requests:
                yield b"ok"
        finally:
            ended.set()

    server = grpc.aio.server(
        options=[
            *options,
            ("grpc.keepalive_permit_without_calls", 1),
            ("grpc.http2.min_ping_interval_without_data_ms", 1000),
        ]
    )
    server.add_generic_rpc_handlers(
        (
            grpc.method_handlers_generic_handler(
                "bench.T", {"S": grpc.stream_stream_rpc_method_handler(handler)}
            ),
        )
    )
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    proc = subprocess.Popen(
        [sys.executable, "-m", "tests.bench.keepalive_cut", "--client", f"127.0.0.1:{port}"],
        stdout=subprocess.PIPE,
        text=True,
    )
    cut = False
    try:
        assert proc.stdout is not None
        if (await asyncio.to_thread(proc.stdout.readline)).strip() != "ready":
            raise RuntimeError("the client did not connect")
        listing = subprocess.run(
            ["ss", "-tnH", f"dport = :{port}"], capture_output=True, text=True, check=True
        ).stdout.split()
        client_port = listing[3].rsplit(":", 1)[1]
        started = time.monotonic()
        if kind == "stop":
            os.kill(proc.pid, signal.SIGSTOP)
        else:
            _nft("add", "table", "inet", TABLE)
            cut = True
            _nft("add", "chain", "inet", TABLE, "in", "{ type filter hook input priority 0; }")
            _nft("add", "rule", "inet", TABLE, "in", "tcp", "sport", client_port, "drop")
            _nft("add", "rule", "inet", TABLE, "in", "tcp", "dport", client_port, "drop")
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(wait):
                await ended.wait()
        return min(wait, time.monotonic() - started)
    finally:
        if cut:
            subprocess.run(["nft", "delete", "table", "inet", TABLE], capture_output=True)
        with contextlib.suppress(ProcessLookupError):
            os.kill(proc.pid, signal.SIGCONT)
        proc.kill()
        proc.wait()
        await server.stop(None)


async def main_async(wait: float) -> list[Figure]:
    found = []
    for label, options in (("master", session_keepalive()), ("old 2.5 s/10 s", OLD)):
        for kind in ("stop", "cut"):
            seconds = await one(options, kind, wait)
            note = f"still open after {wait:g} s" if seconds >= wait else ""
            found.append(Figure(f"keepalive {label}: stream after {kind}", seconds, "s", note))
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--client", default="", help=argparse.SUPPRESS)
    parser.add_argument("--wait", type=float, default=15.0)
    parser.add_argument("--no-record", action="store_true")
    args = parser.parse_args()
    if args.client:
        client(args.client)
        return
    found = asyncio.run(main_async(args.wait))
    print(table(found))
    print(f"load average {os.getloadavg()[0]:.2f}")
    if not args.no_record:
        record(found, "python -m tests.bench.keepalive_cut " + " ".join(sys.argv[1:]))


if __name__ == "__main__":
    main()
