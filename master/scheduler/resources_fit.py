"""Filter: the pod's requests must fit in what the node has left.

Left = allocatable (reported by the agent) - requests of pods already bound.
As in Kubernetes' NodeResourcesFit, only requested resources are checked, so a
pod requesting nothing fits on any node (the spread score then keeps such pods
from piling up), and a node short of both CPU and memory reports both reasons;
the framework counts each.
"""

from __future__ import annotations

from dataclasses import dataclass

from master.model import Pod
from master.scheduler.nodeinfo import NodeInfo, pod_demand

INSUFFICIENT_CPU = "insufficient cpu"
INSUFFICIENT_MEMORY = "insufficient memory"


@dataclass(frozen=True, slots=True)
class ResourcesFit:
    name: str = "NodeResourcesFit"

    def filter(self, pod: Pod, info: NodeInfo) -> str | tuple[str, ...] | None:
        want = pod_demand(pod).requests
        allocatable = info.node.allocatable
        used = info.requested
        short_cpu = (
            want.cpu_millis > 0 and want.cpu_millis > allocatable.cpu_millis - used.cpu_millis
        )
        short_memory = (
            want.memory_bytes > 0
            and want.memory_bytes > allocatable.memory_bytes - used.memory_bytes
        )
        if short_cpu and short_memory:
            return (INSUFFICIENT_CPU, INSUFFICIENT_MEMORY)
        if short_cpu:
            return INSUFFICIENT_CPU
        if short_memory:
            return INSUFFICIENT_MEMORY
        return None
