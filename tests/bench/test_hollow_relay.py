"""The hollow fleet's cuttable relay (tests/bench/hollow_fleet.py Relay) when the master is
gone: an agent connecting through it is closed, as a direct connection would be refused,
without the traceback asyncio printed for each such connection (SIGTERM to the master under
load: six 'Unhandled exception in client_connected_cb' in one 1,000-node run)."""

from __future__ import annotations

import asyncio
import socket
from typing import Any

from tests.bench.hollow_fleet import Relay


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_a_connection_through_the_relay_to_a_gone_master_just_ends() -> None:
    async def scenario() -> tuple[bytes, list[dict[str, Any]]]:
        errors: list[dict[str, Any]] = []
        asyncio.get_running_loop().set_exception_handler(lambda _loop, ctx: errors.append(ctx))
        relay = Relay(f"127.0.0.1:{_closed_port()}")
        address = await relay.start()
        host, _, port = address.rpartition(":")
        reader, writer = await asyncio.open_connection(host, int(port))
        got = await asyncio.wait_for(reader.read(), 10)
        writer.close()
        await asyncio.sleep(0.1)  # the relay's task is done and reported by now
        return got, errors

    got, errors = asyncio.run(scenario())

    assert got == b""
    assert errors == []
