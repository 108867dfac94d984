"""`pinnace cordon|uncordon|drain NODE`: kubectl's verbs for taking a machine out of service.

The master decides what a drain step evicts (master/app/drain.py); this module
repeats the step until the node holds no pod, printing kubectl's lines
(`evicting pod X`, `pod/X evicted`, `node/N drained`), and fails with the
pods that cannot move or with what it still waits for when the timeout ends.
"""

from __future__ import annotations

import time

from master.cli.client import CliError, MasterClient
from protos import cluster_pb2

POLL_SECONDS = 0.5


def run_cordon(address: str, node: str, unschedulable: bool) -> int:
    client = MasterClient(address)
    try:
        reply = client.call(
            client.stub.CordonNode,
            cluster_pb2.CordonNodeRequest(name=node, unschedulable=unschedulable),
        )
    finally:
        client.close()
    verb = "cordoned" if unschedulable else "uncordoned"
    print(f"node/{node} {verb}" if reply.changed else f"node/{node} already {verb}")
    return 0


def run_drain(address: str, node: str, timeout: float) -> int:
    client = MasterClient(address)
    deadline = time.monotonic() + timeout if timeout > 0 else float("inf")
    outstanding: set[str] = set()
    first = True
    try:
        while True:
            reply = client.call(client.stub.DrainNode, cluster_pb2.DrainNodeRequest(name=node))
            if first:
                print(f"node/{node} cordoned")
                first = False
            if reply.blocked:
                lines = "; ".join(f"{w.pod}: {w.reason}" for w in reply.blocked)
                raise CliError(
                    f'error: unable to drain node "{node}": these pods cannot move: {lines}; '
                    f"the node stays cordoned (pinnace uncordon {node} to undo)"
                )
            for pod in reply.evicted:
                print(f"evicting pod {pod}")
            left = set(reply.terminating) | {w.pod for w in reply.waiting}
            for pod in sorted(outstanding - left - set(reply.evicted)):
                print(f"pod/{pod} evicted")
            outstanding = left | set(reply.evicted)
            if not outstanding:
                print(f"node/{node} drained")
                return 0
            if time.monotonic() >= deadline:
                waits = "; ".join(f"{w.pod}: {w.reason}" for w in reply.waiting)
                raise CliError(
                    f'error: drain of node "{node}" timed out with {len(outstanding)} pods left'
                    + (f" ({waits})" if waits else " (still stopping)")
                )
            time.sleep(POLL_SECONDS)
    finally:
        client.close()
