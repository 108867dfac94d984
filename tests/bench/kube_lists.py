"""Benchmark: how long one `GET /api/v1/nodes` holds the master's event loop.

Run as `python -m tests.bench.kube_lists [--nodes 1000] [--runs 3]`. In process, no
network: a ClusterState with `--nodes` nodes (as hollow agents register them), and on an
event loop whose callbacks are timed in the loop thread's CPU time (as
tests/bench/debug_master.py does, so a loaded machine does not inflate them):

- whole: what the list handler did before issue 15, render every node and encode the
  whole list in one callback (objects.list_kind + json.dumps);
- first / again: KubeApi._list now (master/api/kube/listing.py), on a cold cache and
  then with every node's rendering cached (nodes do not change between lists at steady
  state: heartbeats are kept in the lease table, not in the Node).

For each: the longest callback (the loop's longest hold), and the CPU of the whole list.
`--runs` times each, interleaved; the table gives the median and the worst.
"""

from __future__ import annotations

import argparse
import asyncio
import asyncio.events
import json
import os
import statistics
import sys
import time
from collections.abc import Awaitable, Callable

from aiohttp.test_utils import make_mocked_request

from kernel.clock import FakeClock
from master.api.kube import objects
from master.api.kube.api import KubeApi
from master.api.kube.resources import resource
from master.model import Node, NodeStatus, ObjectMeta, Resources
from master.state import ClusterState
from master.store import MemoryStore
from tests.bench.results import Figure, record, table


class _NoLifecycle:
    def delete_pod(self, name: str, reason: str, message: str, namespace: str = "") -> bool:
        return False

    def forget_node(self, name: str) -> bool:
        return False


def _node(i: int) -> Node:
    name = f"hollow-{i:04d}"
    return Node(
        meta=ObjectMeta(name=name, uid=f"uid-{i}", labels={"kubernetes.io/hostname": name}),
        address="127.0.0.1",
        capacity=Resources(8000, 16 << 30),
        allocatable=Resources(8000, 16 << 30),
        status=NodeStatus(
            ready=True,
            last_heartbeat=1.7e9,
            last_transition=1.7e9,
            agent_version="pinnace 0.1.0",
            os="Debian GNU/Linux 12 (bookworm)",
            kernel="6.1.0",
            container_runtime="docker://27.0",
        ),
    )


def _timed(run: Callable[[], Awaitable[object]]) -> tuple[float, float]:
    """(longest callback, total) in loop-thread CPU seconds for one `run()`."""
    longest = [0.0]
    original = asyncio.events.Handle._run

    def timed_run(self: asyncio.events.Handle) -> None:
        started = time.thread_time()
        try:
            original(self)
        finally:
            longest[0] = max(longest[0], time.thread_time() - started)

    async def main() -> float:
        started = time.thread_time()
        await run()
        return time.thread_time() - started

    asyncio.events.Handle._run = timed_run  # type: ignore[method-assign]
    try:
        total = asyncio.run(main())
    finally:
        asyncio.events.Handle._run = original  # type: ignore[method-assign]
    return longest[0], total


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nodes", type=int, default=1000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--no-record", action="store_true", help="do not append results.jsonl")
    args = parser.parse_args(argv)
    state = ClusterState(MemoryStore(), FakeClock())
    for i in range(args.nodes):
        state.put(_node(i))
    nodes = resource("", "nodes")
    assert nodes is not None

    async def whole() -> object:
        items = objects.list_kind(state, "Node", 0.0, 0.0)
        listed = {"apiVersion": "v1", "kind": "NodeList", "metadata": {}, "items": items}
        return json.dumps(listed, separators=(",", ":")).encode()

    api = KubeApi(state, _NoLifecycle(), FakeClock(), "")

    # Made once, outside the timed lists: a mocked request costs milliseconds by itself.
    request = make_mocked_request("GET", "/api/v1/nodes")

    async def chunked() -> object:
        return await api._list(request, nodes, None)

    results: dict[str, list[tuple[float, float]]] = {"whole": [], "first": [], "again": []}
    for _ in range(args.runs):
        api.rendered = type(api.rendered)()
        results["whole"].append(_timed(whole))
        results["first"].append(_timed(chunked))
        results["again"].append(_timed(chunked))
    figures: list[Figure] = []
    for mode, runs in results.items():
        holds = [r[0] * 1000 for r in runs]
        totals = [r[1] * 1000 for r in runs]
        prefix = f"GET /api/v1/nodes {args.nodes} nodes, {mode}"
        note = f"median of {len(runs)}, worst {{:.1f}}; loop-thread CPU"
        figures += [
            Figure(f"{prefix}: longest loop hold", statistics.median(holds), "ms",
                   note.format(max(holds))),
            Figure(f"{prefix}: CPU per list", statistics.median(totals), "ms",
                   note.format(max(totals))),
        ]  # fmt: skip
    print(table(figures))
    print(f"load average {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    if not args.no_record:
        record(figures, "python -m tests.bench.kube_lists " + " ".join(argv or sys.argv[1:]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
