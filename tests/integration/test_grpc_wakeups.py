"""A master loop busy in 20 ms steps still reads its streams (master/grpc_wakeups.py).

Real gRPC between two processes: 300 client streams each send a message every 5 ms while
the server's loop runs CPU-bound steps of 20 ms with a turn between two, as a controller
pass does. Without the drain, grpc.aio's poller thread blocks once 278 wake-up bytes are
unread and the server read none of the messages through the busy steps (0 a step, in three
rounds of 2 s, against ~200 a step with it); this test fails then."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path

import grpc

from master.grpc_wakeups import drain_grpc_wakeups

CLIENT = Path(__file__).with_name("grpc_stream_client.py")
STREAMS = 300
BUSY_SECONDS = 1.5
STEP_SECONDS = 0.02


def test_a_loop_busy_in_steps_reads_its_streams() -> None:
    async def run() -> tuple[int, int]:
        read = 0

        async def stream(requests: AsyncIterator[bytes], _: grpc.aio.ServicerContext) -> bytes:
            nonlocal read
            async for _message in requests:
                read += 1
            return b""

        handler = grpc.method_handlers_generic_handler(
            "wakeups.Test", {"Stream": grpc.stream_unary_rpc_method_handler(stream)}
        )
        server = grpc.aio.server()
        server.add_generic_rpc_handlers((handler,))
        port = server.add_insecure_port("127.0.0.1:0")
        await server.start()
        assert drain_grpc_wakeups(asyncio.get_running_loop())
        loop = asyncio.get_running_loop()
        client = subprocess.Popen(
            [sys.executable, str(CLIENT), str(port), str(STREAMS)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            cwd=Path(__file__).parents[2],
        )
        try:
            assert client.stdout is not None
            assert await loop.run_in_executor(None, client.stdout.readline) == b"started\n"
            deadline = time.monotonic() + 30
            while read < 5 * STREAMS:  # every stream open and sending
                assert time.monotonic() < deadline, f"only {read} messages read"
                await asyncio.sleep(0.05)
            # A first busy spell fills the wake-up socket if nothing drains it.
            steps = read_in_steps = 0
            for _spell in range(2):
                steps, read_before = 0, read
                started = time.monotonic()
                while time.monotonic() - started < BUSY_SECONDS:
                    cpu = time.thread_time()
                    while time.thread_time() - cpu < STEP_SECONDS:
                        pass
                    steps += 1
                    await asyncio.sleep(0)
                read_in_steps = read - read_before
                await asyncio.sleep(0.2)
            return steps, read_in_steps
        finally:
            assert client.stdin is not None
            client.stdin.close()
            await loop.run_in_executor(None, client.wait, 30)
            await server.stop(None)

    steps, read = asyncio.run(run())
    # ~200 a step with the drain; 0 without (one per turn at best).
    assert read >= 5 * steps, f"{read} messages read in {steps} busy steps"
