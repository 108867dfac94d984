"""Score: prefer the node with the most room left after placing the pod.

Like Kubernetes' NodeResourcesLeastAllocated: for CPU and memory, the free
fraction of allocatable once the pod's requests are added; the score is their
average, scaled to 0..100. A resource with zero allocatable, or one the pod
would overcommit, contributes 0, so a node with nothing allocatable scores 0.
Spreading load this way leaves headroom everywhere for the next burst.

It reads the non-zero requests (NodeInfo.nonzero_requested, PodDemand.nonzero_requests):
a container without a CPU or memory request counts as 100m / 200 MiB, as in
kube-scheduler, so pods that request nothing spread too instead of tying on every
node and piling onto the smallest name.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from master.model import Pod
from master.scheduler.nodeinfo import NodeInfo, pod_demand


def _free_fraction(requested: int, allocatable: int) -> float:
    if allocatable <= 0 or requested > allocatable:
        return 0.0
    return (allocatable - requested) / allocatable


@dataclass(frozen=True, slots=True)
class LeastAllocated:
    name: str = "NodeResourcesLeastAllocated"
    weight: int = 1

    def score(self, pod: Pod, info: NodeInfo, all_infos: Sequence[NodeInfo]) -> float:
        want = pod_demand(pod).nonzero_requests
        allocatable = info.node.allocatable
        used = info.nonzero_requested
        cpu = _free_fraction(used.cpu_millis + want.cpu_millis, allocatable.cpu_millis)
        memory = _free_fraction(used.memory_bytes + want.memory_bytes, allocatable.memory_bytes)
        return (cpu + memory) * 50.0

    def normalize(self, pod: Pod, scores: list[float]) -> list[float]:
        # Already on 0..100 and comparable across nodes.
        return scores
