"""A client process for test_grpc_wakeups: STREAMS streams to 127.0.0.1:PORT, each sending a
small message every 5 ms until stdin closes (real gRPC, another process)."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import AsyncIterator

import grpc

METHOD = "/wakeups.Test/Stream"


async def main(port: int, streams: int) -> None:
    async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
        call = channel.stream_unary(METHOD)
        done = asyncio.Event()

        async def messages() -> AsyncIterator[bytes]:
            while not done.is_set():
                yield b"x"
                await asyncio.sleep(0.005)

        calls = [asyncio.ensure_future(call(messages())) for _ in range(streams)]
        print("started", flush=True)
        await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)
        done.set()
        await asyncio.gather(*calls, return_exceptions=True)


if __name__ == "__main__":
    asyncio.run(main(int(sys.argv[1]), int(sys.argv[2])))
