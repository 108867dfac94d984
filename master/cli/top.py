"""`pinnace top nodes` / `pinnace top pods`: CPU and memory as the agents last measured them.

kubectl top's columns and units: CPU in millicores (`250m`), memory in MiB (`64Mi`), and
for nodes the share of what pods may use (allocatable), truncated as kubectl truncates it.
The numbers come from the agents' Docker stats and machine readings (agent/usage.py),
refreshed every few seconds; a freshly started cluster has none for a few seconds, which
is said in one sentence, as kubectl does. `kubectl top` reads the same numbers through
metrics.k8s.io (master/api/kube/metrics.py).
"""

from __future__ import annotations

from master.api.tables import format_table
from master.cli.client import CliError, MasterClient
from protos import cluster_pb2

MI = 1024 * 1024


def _cpu(millis: int) -> str:
    return f"{millis}m"


def _memory(num_bytes: int) -> str:
    return f"{num_bytes // MI}Mi"


def _share(used: int, of: int) -> str:
    """The percentage as kubectl top prints it: milli-units divided in floating point,
    times 100, truncated (12.9% is "12%"), so both commands print the same figure."""
    return f"{int(float(used * 1000) / float(of * 1000) * 100)}%" if of > 0 else "<unknown>"


def node_table(reply: cluster_pb2.GetUsageResponse) -> str:
    header = ["NAME", "CPU(cores)", "CPU(%)", "MEMORY(bytes)", "MEMORY(%)"]
    rows = [
        [
            n.node,
            _cpu(n.cpu_millis),
            _share(n.cpu_millis, n.allocatable_cpu_millis),
            _memory(n.memory_bytes),
            _share(n.memory_bytes, n.allocatable_memory_bytes),
        ]
        for n in reply.nodes
    ]
    return format_table(header, rows)


def pod_table(reply: cluster_pb2.GetUsageResponse) -> str:
    header = ["NAME", "CPU(cores)", "MEMORY(bytes)"]
    rows = [[p.pod, _cpu(p.cpu_millis), _memory(p.memory_bytes)] for p in reply.pods]
    return format_table(header, rows)


def run_top(address: str, kind: str) -> int:
    client = MasterClient(address)
    try:
        reply = client.call(client.stub.GetUsage, cluster_pb2.GetUsageRequest())
    finally:
        client.close()
    if kind == "nodes":
        if not reply.nodes:
            raise CliError("error: metrics not available yet (agents report every 5 s)")
        print(node_table(reply))
    else:
        if not reply.pods:
            raise CliError("error: metrics not available yet (no running pod reported)")
        print(pod_table(reply))
    return 0
