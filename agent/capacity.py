"""The node's capacity and allocatable resources, as reported to the master.

Capacity is detected with psutil (CPUs x 1000 millicores, total memory) unless the
operator overrides it (`--capacity-cpu/--capacity-memory`: tests and hollow nodes
claim what they like); allocatable is capacity minus what the operator reserves for
the system and the agent itself (`--reserve-cpu`, default 100m; `--reserve-memory`,
default 256Mi), never below zero. The scheduler packs pods against allocatable.
"""

from __future__ import annotations

from dataclasses import dataclass

import psutil

from agent.model import Resources
from kernel.quantity import parse_quantity_cpu, parse_quantity_memory

DEFAULT_RESERVE_CPU = "100m"
DEFAULT_RESERVE_MEMORY = "256Mi"


@dataclass(frozen=True, slots=True)
class NodeResources:
    capacity: Resources
    allocatable: Resources


def detect_capacity() -> Resources:
    """What this machine has: every logical CPU and all physical memory."""
    cpus = psutil.cpu_count(logical=True) or 1
    return Resources(cpu_millis=cpus * 1000, memory_bytes=int(psutil.virtual_memory().total))


def compute_resources(
    detected: Resources,
    capacity_cpu: str | None = None,
    capacity_memory: str | None = None,
    reserve_cpu: str = DEFAULT_RESERVE_CPU,
    reserve_memory: str = DEFAULT_RESERVE_MEMORY,
) -> NodeResources:
    """Applies overrides and reserves (quantity strings; QuantityError when malformed)."""
    capacity = Resources(
        cpu_millis=(
            parse_quantity_cpu(capacity_cpu) if capacity_cpu is not None else detected.cpu_millis
        ),
        memory_bytes=(
            parse_quantity_memory(capacity_memory)
            if capacity_memory is not None
            else detected.memory_bytes
        ),
    )
    allocatable = Resources(
        cpu_millis=max(0, capacity.cpu_millis - parse_quantity_cpu(reserve_cpu)),
        memory_bytes=max(0, capacity.memory_bytes - parse_quantity_memory(reserve_memory)),
    )
    return NodeResources(capacity=capacity, allocatable=allocatable)
