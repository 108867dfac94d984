"""`pinnace master`: wires the store, state, controllers and gRPC API together.

Start-up order matters: load the whole store into memory, give every known node
a fresh lease (the master was away, not the nodes), then serve. On SIGTERM or
SIGINT the master stops accepting calls, flushes queued writes and exits; a
kill -9 loses at most the last flush interval of agent status, which the agents
report again when they reconnect (desired state is flushed before every apply
returns, so it is never lost).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import sys
from dataclasses import dataclass
from pathlib import Path

import grpc

from master.api.cluster_servicer import ClusterServicer
from master.api.node_servicer import NodeServicer
from master.clock import SystemClock
from master.controllers.manager import ControllerManager
from master.controllers.nodes import LeaseTable
from master.state import ClusterState
from master.store.port import StoreError
from master.store.sqlite import SqliteStore
from protos import cluster_pb2_grpc, node_pb2_grpc

log = logging.getLogger("pinnace.master")

# The largest gRPC message the master accepts: apply carries whole files
# (master.manifest caps each at 1 MiB), 8 MiB leaves room for several.
MAX_MESSAGE_BYTES = 8 * 1024 * 1024


@dataclass(frozen=True, slots=True)
class MasterConfig:
    listen: str
    data_dir: Path
    heartbeat_interval: float = 1.0
    lease_seconds: float = 3.0
    eviction_timeout: float = 0.0


async def serve(config: MasterConfig) -> None:
    clock = SystemClock()
    store = SqliteStore.in_data_dir(config.data_dir)
    state = ClusterState(store, clock)
    await state.load()
    leases = LeaseTable()
    manager = ControllerManager(state, clock, leases, config.lease_seconds, config.eviction_timeout)
    manager.start_grace()

    options = [
        ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
        ("grpc.max_send_message_length", 64 * 1024 * 1024),
        ("grpc.keepalive_permit_without_calls", 1),
        ("grpc.http2.min_ping_interval_without_data_ms", 1000),
    ]
    server = grpc.aio.server(options=options)
    cluster_pb2_grpc.add_ClusterServiceServicer_to_server(
        ClusterServicer(state, manager, clock), server
    )
    node_pb2_grpc.add_NodeServiceServicer_to_server(
        NodeServicer(
            state, leases, manager, clock, config.heartbeat_interval, config.lease_seconds
        ),
        server,
    )
    port = server.add_insecure_port(config.listen)
    if port == 0:
        raise SystemExit(f"pinnace master: cannot listen on {config.listen}")
    await server.start()
    host = config.listen.rsplit(":", 1)[0]
    # Tests and scripts read this line to learn the port when --listen asked for 0.
    print(f"pinnace master listening on {host}:{port}", flush=True)

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    tasks = [
        asyncio.create_task(manager.run(), name="controllers"),
        asyncio.create_task(state.run_flusher(), name="flusher"),
    ]
    await stop.wait()
    log.info("stopping")
    await server.stop(grace=2.0)
    for task in tasks:
        task.cancel()
    for task in tasks:
        with contextlib.suppress(asyncio.CancelledError):
            await task
    await state.flush()
    store.close()


def run_master(config: MasterConfig) -> int:
    try:
        asyncio.run(serve(config))
    except KeyboardInterrupt:
        pass
    except (OSError, StoreError) as e:
        print(f"pinnace master: {e}", file=sys.stderr)
        return 1
    return 0
