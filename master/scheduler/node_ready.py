"""Filter: only nodes whose agent reports Ready, and is connected, take new pods.

A node turns not-ready when its heartbeats stop (the node lifecycle controller
flips `status.ready`); placing a pod there would leave it Pending on a machine
nobody is driving. Kubernetes expresses this as the not-ready taint; we read
the condition directly.
"""

from __future__ import annotations

from dataclasses import dataclass

from master.model import Pod
from master.scheduler.nodeinfo import NodeInfo

NOT_READY = "node is not ready"
DISCONNECTED = "node's agent is disconnected"


@dataclass(frozen=True, slots=True)
class NodeReady:
    name: str = "NodeReady"

    def filter(self, pod: Pod, info: NodeInfo) -> str | None:
        if not info.node.status.ready:
            return NOT_READY
        # A broken session is a suspicion: no new pods until the agent is back.
        return DISCONNECTED if info.node.status.session_lost_at else None
