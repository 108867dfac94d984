"""Filter: cordoned nodes (`unschedulable: true`) take no new pods.

Cordoning is how an operator drains a machine: pods already there keep
running, but the scheduler must not add more.
"""

from __future__ import annotations

from dataclasses import dataclass

from master.model import Pod
from master.scheduler.nodeinfo import NodeInfo

UNSCHEDULABLE = "node is unschedulable"


@dataclass(frozen=True, slots=True)
class NodeUnschedulable:
    name: str = "NodeUnschedulable"

    def filter(self, pod: Pod, info: NodeInfo) -> str | None:
        return UNSCHEDULABLE if info.node.unschedulable else None
