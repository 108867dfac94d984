"""`pinnace logs POD [-c CONTAINER] [-f] [--tail N] [--timestamps] [--previous]`.

The master asks the pod's agent over its node session and relays the bytes
(master/api/logs.py), exactly as for `kubectl logs`; this command writes them
to stdout as they come. Ctrl-C ends a follow quietly.
"""

from __future__ import annotations

import sys

from master.cli.client import MasterClient
from protos import cluster_pb2


def run_logs(
    address: str,
    pod: str,
    container: str,
    follow: bool,
    tail: int,
    timestamps: bool,
    previous: bool,
    namespace: str = "default",
) -> int:
    if pod.startswith(("pod/", "pods/", "po/")):
        pod = pod.split("/", 1)[1]
    client = MasterClient(address)
    request = cluster_pb2.StreamLogsRequest(
        pod=pod,
        container=container,
        follow=follow,
        tail_lines=tail,
        timestamps=timestamps,
        previous=previous,
        namespace=namespace,
    )
    out = sys.stdout.buffer
    try:
        for chunk in client.stream(client.stub.StreamLogs, request):
            out.write(chunk.data)
            out.flush()
    finally:
        client.close()
    return 0
